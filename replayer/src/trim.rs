//! Cutting the dead master's logs back to what a replay can follow.

use ftmb_core::pal::{LogRecord, LoggedCounts};

/// Cut the dead master's per-worker logs back to the longest prefixes that
/// a replay can follow without waiting for an access nobody will log.
///
/// The output logger holds a prefix of each worker's records, but the
/// prefixes need not fit together: worker 1's access of count `c` to a
/// variable may be lost while worker 0's record of count `c + 1` arrived.
/// A replay of that record waits for count `c`, which only worker 1's
/// unlogged tail can supply, and that tail need not reach the variable
/// before it waits for one of worker 0's later records (its batches are
/// cut differently from the master's, so its accesses come in another
/// order): a deadlock. So every record past a variable's first gap (counted
/// from `start`, the counters restored from the snapshot) is dropped with
/// the rest of its worker's log, until no gap is left.
///
/// Nothing released is lost by this: a record past a gap depends, through
/// the variable's vector clock, on the lost record, and so do the later
/// records of its worker; an output whose dependency vector names a lost
/// record never commits. Returns the number of records dropped.
pub fn trim_to_gap_free(logs: &mut [Vec<(u64, LogRecord)>], start: &[u64]) -> usize {
    let mut dropped = 0;
    loop {
        let counts = LoggedCounts::of(logs.iter().map(Vec::as_slice), start.len());
        let gaps = first_gaps(&counts, start);
        let mut cut = false;
        for log in logs.iter_mut() {
            let past_gap = log.iter().position(|(_, r)| match r {
                LogRecord::Pal(p) => gaps.get(p.var as usize).is_some_and(|&g| p.count > g),
                _ => false,
            });
            if let Some(i) = past_gap {
                dropped += log.len() - i;
                log.truncate(i);
                cut = true;
            }
        }
        if !cut {
            return dropped;
        }
    }
}

/// Per variable: the first count after `start[var]` that no record
/// claims.
fn first_gaps(counts: &LoggedCounts, start: &[u64]) -> Vec<u64> {
    start
        .iter()
        .enumerate()
        .map(|(v, &s)| {
            let mut next = s + 1;
            for &c in counts.counts(v as u32) {
                if c == next {
                    next += 1;
                } else if c > next {
                    break;
                }
            }
            next
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftmb_core::pal::Pal;

    fn pal(seq: u64, packet: u64, var: u32, count: u64) -> (u64, LogRecord) {
        (seq, LogRecord::Pal(Pal { packet, var, count }))
    }

    #[test]
    fn logs_are_cut_back_past_the_first_gap_of_any_variable() {
        // Var 7 restored at count 1. Worker 1's access at count 3 was lost;
        // worker 0 logged count 2, then 4 (past the gap), then var 5 at
        // count 1, which goes with it.
        let mut logs = vec![
            vec![pal(1, 10, 7, 2), pal(2, 12, 7, 4), pal(3, 12, 5, 1)],
            vec![pal(1, 11, 6, 1)],
        ];
        let start = [0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(trim_to_gap_free(&mut logs, &start), 2);
        assert_eq!(logs[0], vec![pal(1, 10, 7, 2)]);
        assert_eq!(logs[1], vec![pal(1, 11, 6, 1)]);
        // Cutting worker 0 opens a gap in var 5 that cuts worker 1 next.
        let mut logs = vec![
            vec![pal(1, 10, 7, 3), pal(2, 12, 5, 1)],
            vec![pal(1, 11, 5, 2), pal(2, 13, 6, 1)],
        ];
        assert_eq!(trim_to_gap_free(&mut logs, &start), 4);
        assert!(logs.iter().all(Vec::is_empty));
        // A gap-free set is left as it is.
        let mut logs = vec![vec![pal(1, 10, 7, 2)], vec![pal(1, 11, 7, 3)]];
        assert_eq!(trim_to_gap_free(&mut logs, &start), 0);
    }
}
