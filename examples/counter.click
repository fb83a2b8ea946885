// Count IPv4 packets by protocol over a trace.
//   ftmb run examples/counter.click IN=trace.pcap
src :: FromDump($IN, STOP true, FORCE_IP true);
cl :: IPClassifier(tcp, udp, -);
src -> Strip(14) -> CheckIPHeader -> cl;
cl[0] -> tcp :: Counter -> Discard;
cl[1] -> udp :: Counter -> Discard;
cl[2] -> other :: Counter -> Discard;
DriverManager(wait, print tcp.count, print udp.count, print other.count, stop);
