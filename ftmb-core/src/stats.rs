//! Summaries of measured samples, shared by the benchmarks (`ftmb bench`)
//! and the lab instruments (`ftmb-lab client`), so that a "p99" means the
//! same thing in every report.

/// The sample at quantile `q` (0 to 1) of `sorted` (ascending): the one at
/// index `round(q × (n − 1))`, the nearest rank with no interpolation, so
/// that every percentile reported is a value that was measured. `q` of 1
/// (or more) is the largest sample; `None` when there are no samples.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let i = (last as f64 * q).round() as usize;
    Some(sorted[i.min(last)])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_without_interpolation() {
        let v: Vec<u64> = (1..=101).collect();
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&v, 0.5), Some(51));
        assert_eq!(percentile(&v, 0.99), Some(100));
        assert_eq!(percentile(&v, 1.0), Some(101));
        assert_eq!(percentile(&v, 2.0), Some(101));
        assert_eq!(percentile(&[1.5f64, 2.5], 0.5), Some(2.5), "0.5 rounds up");
        assert_eq!(percentile::<u64>(&[], 0.5), None);
    }
}
