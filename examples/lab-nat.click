// A NAT between two network interfaces, for scripts/lab.sh: clients on the
// inside network $INSIDE (behind $IN_IF) reach servers behind $OUT_IF from
// the public address $PUB, ports 1024-65535 (Click's IPRewriter). No ARP:
// the lab gives every host static neighbour entries, and EtherRewrite puts
// the next hop's address on each frame. IPv4 TCP and UDP only; everything
// else is counted and dropped. Run without fault tolerance:
//   ftmb run examples/lab-nat.click IN_IF=m0 OUT_IF=m1 CLIENT_MAC=... SERVER_MAC=...
// or as the four roles (ftmb input-logger / output-logger / replica / master).
// Every role builds this whole graph; the devices open only where used
// (sources in the input logger, sinks in the output logger).

define($IN_IF m0, $OUT_IF m1, $INSIDE 10.0.1.0/24, $PUB 10.0.2.1,
       $IN_MAC 02:00:00:00:01:01, $CLIENT_MAC 02:00:00:00:01:02,
       $OUT_MAC 02:00:00:00:02:01, $SERVER_MAC 02:00:00:00:02:02);

inside :: FromDevice($IN_IF);
outside :: FromDevice($OUT_IF);
rw :: IPRewriter(pattern $PUB 1024-65535 - - 0 1, drop);

in_eth :: Classifier(12/0800, -);
out_eth :: Classifier(12/0800, -);
inside -> in_eth;
outside -> out_eth;
in_eth[1] -> non_ip :: Counter -> Discard;
out_eth[1] -> non_ip;

in_eth[0] -> Strip(14) -> CheckIPHeader(VERBOSE false)
  -> in_ip :: IPClassifier(src net $INSIDE and (tcp or udp), -);
out_eth[0] -> Strip(14) -> CheckIPHeader(VERBOSE false)
  -> out_ip :: IPClassifier(dst host $PUB and (tcp or udp), -);
in_ip[0] -> [0]rw;
out_ip[0] -> [1]rw;
in_ip[1] -> other :: Counter -> Discard;
out_ip[1] -> other;

rw[0] -> out_ttl :: DecIPTTL -> Unstrip(14) -> EtherRewrite($OUT_MAC, $SERVER_MAC)
  -> fwd :: Counter -> ToDevice($OUT_IF);
rw[1] -> in_ttl :: DecIPTTL -> Unstrip(14) -> EtherRewrite($IN_MAC, $CLIENT_MAC)
  -> rev :: Counter -> ToDevice($IN_IF);
out_ttl[1] -> expired :: Counter -> Discard;
in_ttl[1] -> expired;
