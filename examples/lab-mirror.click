// A reflector for scripts/lab.sh --parity: every frame that arrives on $DEV
// goes back out of $DEV as its mirror image (Ethernet addresses, IP
// addresses, TCP/UDP ports and TCP seq/ack swapped; checksums stay valid
// without a rewrite). Run in the server namespace, it sends each packet the
// NAT forwarded back through the NAT, so the reverse direction can be
// compared too, whatever port the NAT chose. Anything that is not IPv4 is
// counted and dropped.
//   ftmb run examples/lab-mirror.click DEV=s0

define($DEV s0);

FromDevice($DEV) -> eth :: Classifier(12/0800, -);
eth[0] -> EtherMirror -> Strip(14) -> CheckIPHeader(VERBOSE false)
  -> IPMirror -> Unstrip(14) -> mirrored :: Counter -> ToDevice($DEV);
eth[1] -> non_ip :: Counter -> Discard;
