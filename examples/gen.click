// Synthetic shared-state accesses for sweeps: $ACCESSES accesses of
// $STATE_SIZE-byte cells per packet, a share $WRITE_RATIO of them writes.
//
//   ftmb run examples/gen.click IN=trace.pcap OUT=out.pcap ACCESSES=8 WRITE_RATIO=0.2
define($IN trace.pcap, $OUT gen-out.pcap, $ACCESSES 4, $STATE_SIZE 64,
       $SLOTS 1024, $WRITE_RATIO 0.5);

src :: FromDump($IN, STOP true, FORCE_IP true);
gen :: Gen(ACCESSES $ACCESSES, STATE_SIZE $STATE_SIZE, SLOTS $SLOTS,
           WRITE_RATIO $WRITE_RATIO);

src -> Strip(14) -> CheckIPHeader -> gen -> Unstrip(14) -> ToDump($OUT);

DriverManager(wait, print gen.accesses, print gen.writes, stop);
