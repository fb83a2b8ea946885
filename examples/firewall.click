// A stateful firewall between the inside network 10.0.0.0/8 and the world.
// Inside hosts may open any connection; outside packets pass only when they
// belong to one of those connections.
//
//   ftmb run examples/firewall.click IN=trace.pcap OUT=out.pcap
define($IN trace.pcap, $OUT firewall-out.pcap);

src :: FromDump($IN, STOP true, FORCE_IP true);
out :: ToDump($OUT);
side :: IPClassifier(src net 10.0.0.0/8, -);
fw :: Firewall(allow src net 10.0.0.0/8, deny all, DEFAULT deny, TIMEOUT 5min, CAPACITY 1000000);

src -> Strip(14) -> CheckIPHeader -> side;
side[0] -> [0] fw;          // from the inside
side[1] -> [1] fw;          // from the outside
fw[0] -> Unstrip(14) -> out;
fw[1] -> Unstrip(14) -> out;

DriverManager(wait, print fw.connections, print fw.allowed, print fw.denied, stop);
