use ftmb_core::config::Source;
use ftmb_core::ft::{FtOptions, MemoryLink};
use ftmb_core::graph::build;
use ftmb_core::router::{run, RunOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

const NAT: &str = include_str!("../../examples/nat.click");

#[test]
#[ignore]
fn replay_speed() {
    let trace = std::env::var("TRACE").unwrap();
    let threads: usize = std::env::var("T")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let batch: usize = std::env::var("B")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let v: BTreeMap<String, String> = [
        ("IN", trace),
        ("OUT", "/dev/null".into()),
        ("OUT2", "/dev/null".into()),
        ("INSIDE", "10.77.0.0/16".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let g = || {
        build(
            &Source {
                name: "n".into(),
                text: NAT.into(),
            },
            &v,
            &ftmb_elements::registry(),
            threads,
        )
        .unwrap()
    };
    let link = Arc::new(MemoryLink::default());
    let opts = RunOptions {
        seed: Some(5),
        batch,
        ft: Some(FtOptions {
            link: link.clone(),
            replay: None,
            restore: None,
            snapshots: None,
        }),
        ..RunOptions::default()
    };
    let t = Instant::now();
    let r = run(g(), &opts, &mut Vec::new(), &mut |_| {});
    let master = t.elapsed();
    let plan = link.replay_plan_after(None, threads);
    let n = plan.packets.len();
    let link2 = Arc::new(MemoryLink::default());
    let opts2 = RunOptions {
        seed: Some(5),
        batch,
        ft: Some(FtOptions {
            link: link2.clone(),
            replay: Some(Arc::new(plan)),
            restore: None,
            snapshots: None,
        }),
        ..RunOptions::default()
    };
    let g2 = g();
    let t = Instant::now();
    let r2 = run(g2, &opts2, &mut Vec::new(), &mut |_| {});
    let replay = t.elapsed();
    eprintln!("packets {n} master {:?} ({:.2} us/pkt) replay {:?} ({:.2} us/pkt) replay_elapsed {:?} div {:?} digest_eq {}",
        master, master.as_secs_f64()*1e6/n as f64, replay, replay.as_secs_f64()*1e6/n as f64, r2.replay_elapsed, r2.divergence, r.digest == r2.digest);
}
