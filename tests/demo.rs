//! The kill-the-primary demo as a test: the four roles as real processes,
//! the master SIGKILLed at several seeded points; nothing released may be
//! lost, duplicated or inconsistent with one NAT mapping per flow.

use std::process::Command;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn sigkill_the_master_at_seeded_points() {
    let mut rng = 0x00c0_ffee_u64;
    for trial in 0..4 {
        // 20k packets at 40k/s: half a second of traffic.
        let kill_ms = 50 + xorshift(&mut rng) % 400;
        let threads = 1 + trial % 2;
        // The last trial links the roles over TCP (loopback), as across
        // hosts.
        let transport: &[&str] = if trial == 3 { &["--tcp"] } else { &[] };
        let out = Command::new(env!("CARGO_BIN_EXE_ftmb"))
            .args([
                "demo",
                "--json",
                "--packets",
                "20000",
                "--flows",
                "2000",
                "--pps",
                "40000",
                "--snapshot-ms",
                "20",
                "--threads",
                &threads.to_string(),
                "--kill-ms",
                &kill_ms.to_string(),
            ])
            .args(transport)
            .output()
            .expect("run ftmb demo");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "demo failed (kill at {kill_ms} ms): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON report");
        assert_eq!(r["lost"], 0, "kill at {kill_ms} ms: {r}");
        assert_eq!(r["duplicated"], 0, "kill at {kill_ms} ms: {r}");
        assert_eq!(r["consistent"], true, "kill at {kill_ms} ms: {r}");
        assert_eq!(r["released"], 20000, "kill at {kill_ms} ms: {r}");
    }
}
