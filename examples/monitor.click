// The monitor microbenchmark: every packet increments a counter shared by
// groups of $SHARING workers, and a per-flow counter.
//
//   ftmb run examples/monitor.click IN=trace.pcap OUT=out.pcap SHARING=4
define($IN trace.pcap, $OUT monitor-out.pcap, $SHARING 1);

src :: FromDump($IN, STOP true, FORCE_IP true);
mon :: Monitor(SHARING $SHARING, PERFLOW true);

src -> Strip(14) -> CheckIPHeader -> mon -> Unstrip(14) -> ToDump($OUT);

DriverManager(wait, print mon.count, print mon.byte_count, print mon.flows, stop);
