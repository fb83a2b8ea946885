// The shape of Click's conf/mazu-nat.click, driven by a trace instead of two
// devices: ARP is elided (frames keep their Ethernet headers through
// Strip/Unstrip), ToHost becomes a counter, and FTP's port mapper is left
// out (FTP control traffic still goes through its own rewriter).
//
//   ftmb run examples/mazu-nat.click IN=trace.pcap OUT=to-extern.pcap OUT2=to-intern.pcap
//
// Frames whose IP source is in 10/8 came from the inside interface; the rest
// from the outside.

define($INTERN 10.0.0.1, $INTERN_NET 10.0.0.0/8, $EXTERN 209.6.198.213, $SERVER 10.0.0.10);

src :: FromDump($IN, STOP true);
side :: Classifier(26/0a, -);
src -> side;

extern_class :: Classifier(12/0806 20/0001, 12/0806 20/0002, 12/0800, -);
intern_class :: Classifier(12/0806 20/0001, 12/0806 20/0002, 12/0800, -);
side[0] -> intern_class;
side[1] -> extern_class;

// ARP MACHINERY (elided: requests and replies are counted)
arp :: Counter -> Discard;
extern_class[0] -> arp;
extern_class[1] -> arp;
extern_class[3] -> Discard;
intern_class[0] -> arp;
intern_class[1] -> arp;
intern_class[3] -> Discard;

// REWRITERS
rw :: IPRewriter(pattern $EXTERN 50000-65535 - - 0 1,      // inside to the world
                 pattern $INTERN 50000-65535 $SERVER - 1 0, // outside to the server
                 pattern $INTERN 50000-65535 $SERVER - 1 1, // inside to the server
                 pass 0,                                    // no mapping: virtual wire
                 pass 2);
tcp_rw :: IPRewriter(pattern $EXTERN 50000-65535 - - 0 1, drop);

// OUTPUT PATH
ip_to_host :: Counter -> Discard;
ip_to_extern :: Unstrip(14) -> CheckIPHeader(14) -> to_extern :: Counter -> ToDump($OUT, ENCAP ETHER);
ip_to_intern :: Unstrip(14) -> CheckIPHeader(14) -> to_intern :: Counter -> ToDump($OUT2, ENCAP ETHER);

rw[0] -> ip_to_extern_class :: IPClassifier(dst host $INTERN, -);
  ip_to_extern_class[0] -> ip_to_host;
  ip_to_extern_class[1] -> ip_to_extern;
rw[1] -> ip_to_intern;
rw[2] -> IPClassifier(dst host $EXTERN) -> ip_to_host;
tcp_rw[0] -> ip_to_extern;
tcp_rw[1] -> ip_to_intern;

// FILTER & REWRITE IP PACKETS FROM OUTSIDE
ip_from_extern :: IPClassifier(dst host $EXTERN, -);
my_ip_from_extern :: IPClassifier(dst tcp ssh,
                                  dst tcp www or https,
                                  src tcp port ftp,
                                  tcp or udp,
                                  -);
extern_class[2] -> Strip(14) -> CheckIPHeader -> ip_from_extern;
ip_from_extern[0] -> my_ip_from_extern;
  my_ip_from_extern[0] -> [1]rw;     // SSH traffic (rewrite to server)
  my_ip_from_extern[1] -> [1]rw;     // HTTP(S) traffic (rewrite to server)
  my_ip_from_extern[2] -> [1]tcp_rw; // FTP control traffic
  my_ip_from_extern[3] -> [4]rw;     // other TCP or UDP traffic: rewrite or to gw
  my_ip_from_extern[4] -> Discard;   // non TCP or UDP traffic is dropped
ip_from_extern[1] -> Discard;        // stuff for other people

// FILTER & REWRITE IP PACKETS FROM INSIDE
ip_from_intern :: IPClassifier(dst host $INTERN,
                               dst net $INTERN_NET,
                               dst tcp port ftp,
                               -);
my_ip_from_intern :: IPClassifier(dst tcp ssh,
                                  dst tcp www or https,
                                  src or dst port dns,
                                  dst tcp port auth,
                                  tcp or udp,
                                  -);
intern_class[2] -> Strip(14) -> CheckIPHeader -> ip_from_intern;
ip_from_intern[0] -> my_ip_from_intern;  // stuff for the gateway from inside
  my_ip_from_intern[0] -> ip_to_host;    // SSH traffic to gw
  my_ip_from_intern[1] -> [2]rw;         // HTTP(S) traffic, redirect to server
  my_ip_from_intern[2] -> Discard;       // DNS (no DNS allowed yet)
  my_ip_from_intern[3] -> ip_to_host;    // auth traffic, gw will reject it
  my_ip_from_intern[4] -> [3]rw;         // other TCP or UDP traffic
  my_ip_from_intern[5] -> ip_to_host;    // non TCP or UDP traffic, to the host
ip_from_intern[1] -> ip_to_host;         // other net 10 stuff, like broadcasts
ip_from_intern[2] -> [0]tcp_rw;          // FTP traffic for outside
ip_from_intern[3] -> [0]rw;              // stuff for outside

DriverManager(wait, print to_extern.count, print to_intern.count, print ip_to_host.count,
              print arp.count, print rw.nmappings, print tcp_rw.nmappings);
