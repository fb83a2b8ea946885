//! What the driver's handlers read and what a run reports: every
//! element's counters summed over the workers, as text or JSON.

use super::msg::WorkerStats;
use crate::element::Value;
use crate::graph::NodeKind;
use std::sync::Arc;

/// Counters of the sources, by element index.
pub(super) type SourceStats = Vec<(usize, Vec<(&'static str, Value)>)>;

fn combined(stats: &[WorkerStats], e: usize) -> Vec<(&'static str, Value)> {
    let mut acc: Vec<(&'static str, Value)> = Vec::new();
    for ws in stats {
        if let Some((vals, _)) = ws.get(e) {
            for (k, v) in vals {
                match acc.iter_mut().find(|(n, _)| n == k) {
                    Some((_, a)) => *a = a.clone().combine(v.clone()),
                    None => acc.push((k, v.clone())),
                }
            }
        }
    }
    acc
}

fn combined_drops(stats: &[WorkerStats], e: usize) -> Vec<(&'static str, u64)> {
    let mut acc: Vec<(&'static str, u64)> = Vec::new();
    for ws in stats {
        if let Some((_, drops)) = ws.get(e) {
            for (k, v) in drops {
                match acc.iter_mut().find(|(n, _)| n == k) {
                    Some((_, a)) => *a += v,
                    None => acc.push((k, *v)),
                }
            }
        }
    }
    acc
}

pub(super) fn handler_value(
    names: &[String],
    classes: &[String],
    stats: &[WorkerStats],
    e: &str,
    h: &str,
) -> Option<String> {
    let i = names.iter().position(|n| n == e)?;
    if let Some((_, v)) = combined(stats, i).into_iter().find(|(k, _)| *k == h) {
        return Some(v.render());
    }
    match h {
        "name" => Some(names[i].clone()),
        "class" => Some(classes[i].clone()),
        "drops" => Some(
            combined_drops(stats, i)
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>()
                .to_string(),
        ),
        _ => None,
    }
}

/// Every node's counters by name: a packet element's summed over the
/// workers (with its drop reasons), a source's own (a device's packets,
/// bytes, kernel drops ...), and under a sink's element its egress
/// counters as `egress`.
pub(super) fn stats_json(
    names: &[String],
    classes: &[String],
    kinds: &[NodeKind],
    stats: &[WorkerStats],
    sources: &SourceStats,
    sinks: &[Arc<crate::egress::Sink>],
) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        let (vals, drops) = match kinds[i] {
            NodeKind::Element => (combined(stats, i), combined_drops(stats, i)),
            NodeKind::Source(_) => match sources.iter().find(|(e, _)| *e == i) {
                Some((_, v)) => (v.clone(), Vec::new()),
                None => continue,
            },
            NodeKind::Driver => continue,
        };
        let mut o = serde_json::Map::new();
        o.insert("class".into(), serde_json::json!(classes[i]));
        for (k, v) in vals {
            o.insert(k.into(), v.to_json());
        }
        if !drops.is_empty() {
            o.insert("drops".into(), counters_json(drops));
        }
        let egress = sinks
            .iter()
            .find(|s| s.element == *name)
            .map(|s| s.egress.lock().stats())
            .unwrap_or_default();
        if !egress.is_empty() {
            o.insert("egress".into(), counters_json(egress));
        }
        m.insert(name.clone(), serde_json::Value::Object(o));
    }
    serde_json::Value::Object(m)
}

/// Named counters as a JSON object.
fn counters_json(c: Vec<(&'static str, u64)>) -> serde_json::Value {
    serde_json::Value::Object(
        c.into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect(),
    )
}
