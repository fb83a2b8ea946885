//! Click's simple elements: `Strip`, `Unstrip`, `Discard`, `Tee`, `Paint`,
//! `PaintSwitch` and `Counter`.

use crate::util::decode_state;
use ftmb_core::element::{element, Filter, Verdict};
use ftmb_core::shared::StateCodec;
use ftmb_core::{Args, Built, ConfigError, Ctx, Element, InitCtx, Out, Packet, Ports, Value};

/// `Strip(N)`: remove N bytes from the front of each packet.
///
/// # Configuration
/// `N`: bytes to strip. A packet shorter than N is stripped to nothing, as
/// Click's `pull` clamps.
///
/// # Ports
/// One input, one output.
///
/// # Shared state
/// None.
pub struct Strip {
    n: usize,
}

impl Filter for Strip {
    #[inline]
    fn action(&mut self, _ctx: &mut Ctx, pkt: &mut Packet) -> Verdict {
        let n = self.n.min(pkt.len());
        pkt.pull(n);
        Verdict::Pass
    }
}

pub(crate) fn build_strip(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let n = a.required("LENGTH")?;
    element(Strip { n })
}

/// `Unstrip(N)`: give back N bytes in front of each packet (the bytes an
/// earlier `Strip` removed).
///
/// # Configuration
/// `N`: bytes to restore.
///
/// # Ports
/// One input, one output.
///
/// # Shared state
/// None.
pub struct Unstrip {
    n: usize,
}

impl Filter for Unstrip {
    #[inline]
    fn action(&mut self, _ctx: &mut Ctx, pkt: &mut Packet) -> Verdict {
        pkt.push_front(self.n);
        Verdict::Pass
    }
}

pub(crate) fn build_unstrip(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let n = a.required("LENGTH")?;
    element(Unstrip { n })
}

/// `Discard`: drop every packet, counting them.
///
/// # Ports
/// One input, no outputs.
///
/// # Handlers
/// `count`.
///
/// # Shared state
/// None.
#[derive(Default)]
pub struct Discard {
    count: u64,
}

impl Element for Discard {
    fn ports(&self) -> Ports {
        Ports::SINK
    }
    fn push(&mut self, _ctx: &mut Ctx, _port: usize, _pkt: Packet, _out: &mut Out) {
        self.count += 1;
    }
    fn push_batch(
        &mut self,
        _ctx: &mut Ctx,
        _port: usize,
        batch: &mut Vec<Packet>,
        _out: &mut Out,
    ) {
        self.count += batch.len() as u64;
        batch.clear();
    }
    fn stats(&self) -> Vec<(&'static str, Value)> {
        vec![("count", Value::Count(self.count))]
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        self.count.encode(out);
    }
    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        self.count = decode_state(buf)?;
        Ok(())
    }
}

pub(crate) fn build_discard(_: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    element(Discard::default())
}

/// `Tee([N])`: copy each packet to every output (outputs 0..n-2 get clones
/// in order, the last output gets the original).
///
/// # Configuration
/// `N`: number of outputs, 1 to 1024 (default: as many as are connected).
///
/// # Ports
/// One input, N outputs (1 or more).
///
/// # Shared state
/// None.
pub struct Tee {
    n: Option<usize>,
}

impl Element for Tee {
    fn ports(&self) -> Ports {
        match self.n {
            Some(n) => Ports::fixed(1, n),
            None => Ports {
                inputs: (1, 1),
                outputs: (1, usize::MAX),
            },
        }
    }
    fn push(&mut self, _ctx: &mut Ctx, _port: usize, pkt: Packet, out: &mut Out) {
        copy_to_every_output(pkt, out);
    }
}

/// Clones of `pkt` to outputs 0..n-2 in order, `pkt` itself to the last.
fn copy_to_every_output(pkt: Packet, out: &mut Out) {
    let n = out.nports();
    for p in 0..n.saturating_sub(1) {
        out.push(p, pkt.clone());
    }
    out.push(n.saturating_sub(1), pkt);
}

/// Most outputs of a `Tee(N)`.
pub const MAX_TEE_OUTPUTS: usize = 1024;

pub(crate) fn build_tee(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let n = a.positional_within("N", 1, MAX_TEE_OUTPUTS)?;
    element(Tee { n })
}

/// `Paint(COLOR)`: set the paint annotation.
///
/// # Configuration
/// `COLOR`: 0 to 255.
///
/// # Ports
/// One input, one output.
///
/// # Shared state
/// None.
pub struct Paint {
    color: u8,
}

impl Filter for Paint {
    #[inline]
    fn action(&mut self, _ctx: &mut Ctx, pkt: &mut Packet) -> Verdict {
        pkt.anno.paint = self.color;
        Verdict::Pass
    }
}

pub(crate) fn build_paint(a: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    let color = a.required("COLOR")?;
    element(Paint { color })
}

/// `PaintSwitch`: send each packet to the output its paint annotation
/// names; paint 255 copies to every output; a missing output drops.
///
/// # Ports
/// One input, any number of outputs.
///
/// # Shared state
/// None.
pub struct PaintSwitch;

impl Element for PaintSwitch {
    fn ports(&self) -> Ports {
        Ports {
            inputs: (1, 1),
            outputs: (1, usize::MAX),
        }
    }
    fn push(&mut self, _ctx: &mut Ctx, _port: usize, pkt: Packet, out: &mut Out) {
        let c = pkt.anno.paint;
        if c == 0xff {
            copy_to_every_output(pkt, out);
        } else {
            out.push(c as usize, pkt);
        }
    }
}

pub(crate) fn build_paint_switch(_: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    element(PaintSwitch)
}

/// `Counter`: count packets and bytes.
///
/// # Ports
/// One input, one output.
///
/// # Handlers
/// `count`, `byte_count` (bytes at the Counter's position) and `rate`
/// (packets per second, Click's EWMA: per-millisecond epochs, weight 1/16,
/// reset after 100 ms idle), all summed over workers.
///
/// # Shared state
/// None: each worker counts its own packets.
#[derive(Default)]
pub struct Counter {
    count: u64,
    bytes: u64,
    rate: crate::util::RateEwma,
}

impl Element for Counter {
    #[inline]
    fn push(&mut self, ctx: &mut Ctx, _port: usize, pkt: Packet, out: &mut Out) {
        self.count += 1;
        self.bytes += pkt.len() as u64;
        self.rate.update(ctx.now_ns(), 1);
        out.push(0, pkt);
    }
    fn push_batch(&mut self, ctx: &mut Ctx, _port: usize, batch: &mut Vec<Packet>, out: &mut Out) {
        self.count += batch.len() as u64;
        self.bytes += batch.iter().map(|p| p.len() as u64).sum::<u64>();
        self.rate.update(ctx.now_ns(), batch.len() as u64);
        out.push_all(0, batch);
    }
    fn stats(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("count", Value::Count(self.count)),
            ("byte_count", Value::Count(self.bytes)),
            ("rate", Value::Rate(self.rate.rate())),
        ]
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        (self.count, self.bytes).encode(out);
    }
    fn load_state(&mut self, buf: &[u8]) -> Result<(), String> {
        (self.count, self.bytes) = decode_state(buf)?;
        Ok(())
    }
}

pub(crate) fn build_counter(_: &mut Args, _: &mut InitCtx<'_>) -> Result<Built, ConfigError> {
    element(Counter::default())
}
