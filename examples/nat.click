// A NAT in Click's language: the inside network $INSIDE is translated to
// 198.18.0.1 with ports 1024-65535 (Click's IPRewriter), replies are
// translated back. Run:
//   ftmb run examples/nat.click IN=trace.pcap OUT=fwd.pcap OUT2=rev.pcap INSIDE=10.77.0.0/24
src :: FromDump($IN, STOP true, FORCE_IP true, TIMING false);
cl :: IPClassifier(src net $INSIDE and (tcp or udp), dst net $INSIDE and (tcp or udp), -);
rw :: IPRewriter(pattern 198.18.0.1 1024-65535 - - 0 1, drop);
src -> Strip(14) -> CheckIPHeader(VERBOSE false) -> cl;
cl[0] -> [0]rw;
cl[1] -> StoreIPAddress(198.18.0.1, dst) -> [1]rw;
cl[2] -> other :: Counter -> Discard;
rw[0] -> fwd :: Counter -> Unstrip(14) -> ToDump($OUT, ENCAP ETHER);
rw[1] -> rev :: Counter -> Unstrip(14) -> ToDump($OUT2, ENCAP ETHER);
DriverManager(wait, print fwd.count, print rev.count, print other.count, print rw.nmappings, stop);
