//! The element half of every output sink (`ToDump`, `ToDevice`): it counts
//! packets and hands them to the runtime's sink (see
//! [`ftmb_core::egress`]), which writes them at once or, under fault
//! tolerance, once the output logger commits them.

use ftmb_core::egress::SinkHandle;
use ftmb_core::shared::StateCodec;
use ftmb_core::{Ctx, Element, Out, Packet, Ports, Value};

/// An output sink element: one input; packets are also passed to output 0
/// if it is connected. Handler `count`.
pub struct ToSink {
    sink: SinkHandle,
    count: u64,
}

impl ToSink {
    /// The element for the declared sink `sink`.
    pub fn new(sink: SinkHandle) -> ToSink {
        ToSink { sink, count: 0 }
    }
}

impl Element for ToSink {
    fn ports(&self) -> Ports {
        Ports {
            inputs: (1, 1),
            outputs: (0, 1),
        }
    }
    fn push(&mut self, ctx: &mut Ctx, _port: usize, pkt: Packet, out: &mut Out) {
        self.count += 1;
        if out.nports() > 0 {
            ctx.emit(&self.sink, pkt.clone());
            out.push(0, pkt);
        } else {
            ctx.emit(&self.sink, pkt);
        }
    }
    fn push_batch(&mut self, ctx: &mut Ctx, _port: usize, batch: &mut Vec<Packet>, out: &mut Out) {
        self.count += batch.len() as u64;
        if out.nports() > 0 {
            let mut copy = batch.clone();
            ctx.emit_all(&self.sink, &mut copy);
            out.push_all(0, batch);
        } else {
            ctx.emit_all(&self.sink, batch);
        }
    }
    fn stats(&self) -> Vec<(&'static str, Value)> {
        vec![("count", Value::Count(self.count))]
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        self.count.encode(out);
    }
    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        self.count = crate::util::decode_state(buf)?;
        Ok(())
    }
}
