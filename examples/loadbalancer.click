// A layer-4 load balancer: connections to 192.0.2.1:80 are spread over three
// backends (least connections first); the backends' replies go back to the
// clients from the VIP.
//
//   ftmb run examples/loadbalancer.click IN=trace.pcap OUT=out.pcap
define($IN trace.pcap, $OUT loadbalancer-out.pcap);

src :: FromDump($IN, STOP true, FORCE_IP true);
out :: ToDump($OUT);
side :: IPClassifier(dst host 192.0.2.1, -);
lb :: LoadBalancer(VIP 192.0.2.1, BACKENDS 10.1.0.1 10.1.0.2 10.1.0.3,
                   PORT 80, POLICY leastconn);

src -> Strip(14) -> CheckIPHeader -> side;
side[0] -> [0] lb;          // from clients, to the VIP
side[1] -> [1] lb;          // from the backends
lb[0] -> Unstrip(14) -> out;
lb[1] -> Unstrip(14) -> out;

DriverManager(wait, print lb.connections, print lb.backends, print lb.balanced,
              print lb.replies, stop);
