//! Wire format: byte-level fixtures both directions, corruption and
//! truncation at every offset, stream reading and writing.

use ftmb_core::pal::{LogRecord, Pal};
use ftmb_logger::wire::*;
use std::io::{self, Read};

/// Heartbeat { seq: 1, ns: 0x0102030405060708 }.
const HB: [u8; 32] = [
    0x46, 0x54, 0x4d, 0x42, // magic "FTMB"
    0x01, 0x00, // version 1
    0x06, // kind Heartbeat
    0x00, // flags
    0x10, 0x00, 0x00, 0x00, // len 16
    0xc7, 0x3a, 0x36, 0xdd, // crc32c 0xdd363ac7
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // ns
];

/// LogBatch { worker 2, first_seq 7, [Pal(5, 9, 3), Clock(6, 0xaabb, 3)] }.
const LB: [u8; 72] = [
    0x46, 0x54, 0x4d, 0x42, 0x01, 0x00, // magic, version
    0x02, 0x00, // kind LogBatch, flags
    0x38, 0x00, 0x00, 0x00, // len 56
    0xd2, 0x70, 0x33, 0x72, // crc32c
    0x02, 0x00, // worker 2
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // first_seq 7
    0x02, 0x00, 0x00, 0x00, // count 2
    0x01, // tag Pal
    0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // packet 5
    0x09, 0x00, 0x00, 0x00, // var 9
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // count 3
    0x02, // tag Clock
    0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // packet 6
    0xbb, 0xaa, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ns 0xaabb
    0x03, 0x00, 0x00, 0x00, // batch of 3 packets
];

/// Output { sink 1, packet 4, ordinal 2, dv [3, 0], ts 9, data de ad }.
const OUT: [u8; 58] = [
    0x46, 0x54, 0x4d, 0x42, 0x01, 0x00, // magic, version
    0x03, 0x00, // kind Output, flags
    0x2a, 0x00, 0x00, 0x00, // len 42
    0xaa, 0x84, 0x5c, 0x33, // crc32c
    0x01, 0x00, // sink 1
    0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // packet id 4
    0x02, 0x00, 0x00, 0x00, // ordinal 2
    0x02, 0x00, // ndv 2
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // dv[0] 3
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // dv[1] 0
    0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ts_ns 9
    0xde, 0xad, // data
];

/// EndOfStream: header only.
const EOS: [u8; 16] = [
    0x46, 0x54, 0x4d, 0x42, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x27, 0x80, 0x63, 0xd1,
];

fn hb() -> HeartbeatMsg {
    HeartbeatMsg {
        seq: 1,
        ns: 0x0102030405060708,
    }
}

fn lb() -> LogBatchMsg {
    LogBatchMsg {
        worker: 2,
        first_seq: 7,
        records: vec![
            LogRecord::Pal(Pal {
                packet: 5,
                var: 9,
                count: 3,
            }),
            LogRecord::Clock {
                packet: 6,
                ns: 0xaabb,
                count: 3,
            },
        ],
    }
}

fn outm() -> OutputMsg {
    OutputMsg {
        sink: 1,
        packet_id: 4,
        ordinal: 2,
        dv: vec![3, 0],
        ts_ns: 9,
        data: vec![0xde, 0xad],
    }
}

fn samples() -> Vec<Message> {
    vec![
        Message::Packet(PacketMsg {
            id: 1,
            ts_ns: 42,
            source: 3,
            data: b"hello packet".to_vec(),
        }),
        Message::LogBatch(lb()),
        Message::Output(outm()),
        Message::Snapshot(SnapshotMsg {
            id: 9,
            cut: vec![(10, 20), (11, 0)],
            payload: vec![1, 2, 3, 4, 5],
        }),
        Message::SnapshotCommitted(SnapshotCommittedMsg { id: 9 }),
        Message::Void(VoidMsg {
            worker: 1,
            after: 40,
            through: 77,
        }),
        Message::Heartbeat(hb()),
        Message::EndOfStream,
        Message::Resume(ResumeMsg { packet: 77 }),
        Message::SnapshotPart(SnapshotPartMsg {
            id: 9,
            total: 12,
            offset: 4,
            data: vec![6, 7, 8],
        }),
        Message::Packet(PacketMsg {
            id: 2,
            ts_ns: 43,
            source: 0,
            data: vec![],
        }),
        Message::LogBatch(LogBatchMsg {
            worker: 0,
            first_seq: 1,
            records: vec![],
        }),
    ]
}

fn encode(m: &Message) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode(&mut v);
    v
}

#[test]
fn fixtures_encode_to_exact_bytes() {
    let mut v = Vec::new();
    hb().encode(&mut v);
    assert_eq!(v, HB);
    let mut v = Vec::new();
    lb().encode(&mut v);
    assert_eq!(v, LB);
    let mut v = Vec::new();
    outm().encode(&mut v);
    assert_eq!(v, OUT);
    assert_eq!(encode(&Message::EndOfStream), EOS);
}

#[test]
fn fixtures_decode_from_exact_bytes() {
    assert_eq!(HeartbeatMsg::decode(&HB).unwrap(), hb());
    assert_eq!(LogBatchMsg::decode(&LB).unwrap(), lb());
    assert_eq!(OutputMsg::decode(&OUT).unwrap(), outm());
    assert_eq!(Message::decode(&EOS).unwrap(), Message::EndOfStream);
    assert_eq!(Message::decode(&LB).unwrap(), Message::LogBatch(lb()));
    let v = FrameView::new_checked(&OUT).unwrap();
    assert_eq!(v.kind(), FrameKind::Output);
    assert_eq!(v.flags(), 0);
    assert_eq!(v.payload(), &OUT[HEADER_LEN..]);
    assert_eq!(v.total_len(), OUT.len());
}

#[test]
fn log_batch_view_is_zero_copy_and_numbered() {
    let v = FrameView::new_checked(&LB).unwrap();
    let b = LogBatchView::new_checked(&v).unwrap();
    assert_eq!((b.worker(), b.first_seq(), b.count()), (2, 7, 2));
    let recs: Vec<_> = b.records().collect();
    assert_eq!(recs, vec![(7, lb().records[0]), (8, lb().records[1])]);
}

#[test]
fn every_message_round_trips() {
    for m in samples() {
        let bytes = encode(&m);
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        assert_eq!(FrameView::new_checked(&bytes).unwrap().kind(), m.kind());
    }
}

#[test]
fn wrong_kind_and_trailing_bytes_are_errors() {
    assert!(matches!(
        HeartbeatMsg::decode(&LB),
        Err(WireError::WrongKind {
            want: FrameKind::Heartbeat,
            got: FrameKind::LogBatch
        })
    ));
    let mut two = HB.to_vec();
    two.extend_from_slice(&EOS);
    assert!(matches!(
        Message::decode(&two),
        Err(WireError::Malformed { .. })
    ));
}

/// Build a frame with a valid checksum over arbitrary kind and payload.
fn raw_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&VERSION.to_le_bytes());
    v.push(kind);
    v.push(0);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&v[6..12]), payload);
    v.extend_from_slice(&crc.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn structural_errors_are_reported() {
    let mut b = HB;
    b[0] = b'X';
    assert!(matches!(Message::decode(&b), Err(WireError::BadMagic(_))));
    let mut b = HB;
    b[4] = 2;
    assert!(matches!(Message::decode(&b), Err(WireError::BadVersion(2))));
    assert!(matches!(
        Message::decode(&raw_frame(99, &[])),
        Err(WireError::UnknownKind(99))
    ));
    assert!(matches!(
        FrameView::new_checked_with_limit(&HB, 15),
        Err(WireError::TooLarge { len: 16, max: 15 })
    ));
    let mut r = FrameReader::with_limit(&HB[..], 8);
    assert!(matches!(r.next_frame(), Err(WireError::TooLarge { .. })));
    let mut b = HB;
    b[20] ^= 1;
    assert!(matches!(
        Message::decode(&b),
        Err(WireError::BadChecksum { .. })
    ));
    assert!(matches!(
        Message::decode(&HB[..10]),
        Err(WireError::Truncated { need: 16, have: 10 })
    ));
    assert!(matches!(
        Message::decode(&HB[..20]),
        Err(WireError::Truncated { need: 32, have: 20 })
    ));
}

#[test]
fn malformed_payloads_with_valid_checksums() {
    let cases: Vec<(u8, Vec<u8>)> = vec![
        // Heartbeat too short / too long.
        (6, vec![0; 15]),
        (6, vec![0; 17]),
        // Log batch: count says 1, no records.
        (
            2,
            [&[0, 0][..], &1u64.to_le_bytes(), &1u32.to_le_bytes()].concat(),
        ),
        // Log batch: unknown record tag.
        (
            2,
            [
                &[0, 0][..],
                &1u64.to_le_bytes(),
                &1u32.to_le_bytes(),
                &[9; 21],
            ]
            .concat(),
        ),
        // Log batch: record cut short.
        (
            2,
            [
                &[0, 0][..],
                &1u64.to_le_bytes(),
                &1u32.to_le_bytes(),
                &[1; 10],
            ]
            .concat(),
        ),
        // Log batch: trailing bytes after the records.
        (
            2,
            [&[0, 0][..], &1u64.to_le_bytes(), &0u32.to_le_bytes(), &[0]].concat(),
        ),
        // Log batch: sequence 0.
        (
            2,
            [&[0, 0][..], &0u64.to_le_bytes(), &0u32.to_le_bytes()].concat(),
        ),
        // Output: dv count larger than the payload.
        (3, [&[0; 14][..], &[0xff, 0xff], &[0; 8]].concat()),
        // Snapshot: cut count larger than the payload.
        (4, [&[0; 8][..], &[0xff, 0xff]].concat()),
        // Packet: shorter than its fixed fields.
        (1, vec![0; 17]),
        // End of stream with a payload.
        (7, vec![0]),
        // Snapshot committed too short.
        (5, vec![0; 7]),
    ];
    for (kind, payload) in cases {
        let f = raw_frame(kind, &payload);
        match Message::decode(&f) {
            Err(WireError::Malformed { .. }) => {}
            other => panic!("kind {kind} payload {payload:?}: {other:?}"),
        }
    }
}

#[test]
fn corruption_of_any_byte_is_detected() {
    for m in samples() {
        let good = encode(&m);
        for at in 0..good.len() {
            for flip in [0x01u8, 0x10, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                assert!(
                    Message::decode(&bad).is_err(),
                    "{:?}: flip {flip:#x} at {at} undetected",
                    m.kind()
                );
                // In a stream too: never a wrong frame.
                let mut r = FrameReader::new(&bad[..]);
                match r.next_message() {
                    Err(_) => {}
                    Ok(got) => panic!("{:?}: flip at {at} read as {got:?}", m.kind()),
                }
            }
        }
    }
}

#[test]
fn truncation_at_every_offset_of_a_stream() {
    let msgs = samples();
    let mut stream = Vec::new();
    let mut ends = vec![0];
    for m in &msgs {
        m.encode(&mut stream);
        ends.push(stream.len());
    }
    for cut in 0..=stream.len() {
        let mut r = FrameReader::new(&stream[..cut]);
        let mut got = Vec::new();
        let end = loop {
            match r.next_message() {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(got[..], msgs[..got.len()], "cut {cut}");
        if ends.contains(&cut) {
            assert!(end.is_ok(), "cut {cut}: {end:?}");
            assert_eq!(r.offset() as usize, cut);
        } else {
            assert!(
                matches!(end, Err(WireError::Truncated { .. })),
                "cut {cut}: {end:?}"
            );
        }
    }
}

/// A reader that hands out at most `n` bytes per call.
struct Trickle<'a> {
    data: &'a [u8],
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.n.min(buf.len()).min(self.data.len());
        buf[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

#[test]
fn writer_batches_and_reader_reassembles_partial_reads() {
    let msgs = samples();
    let mut w = FrameWriter::with_batch_bytes(Vec::new(), 100);
    let mut expect = Vec::new();
    for m in &msgs {
        w.send(m).unwrap();
        m.encode(&mut expect);
        // Whatever was written is a whole number of frames.
        let written = w.get_ref().len();
        assert!(written == 0 || FrameReader::new(&w.get_ref()[..]).next_frame().is_ok());
        assert!(w.buffered() < 100);
    }
    assert!(
        !w.get_ref().is_empty(),
        "the batch size was reached at least once"
    );
    let mut one = Vec::new();
    hb().encode(&mut one);
    w.send_encoded(&one).unwrap();
    expect.extend_from_slice(&one);
    assert_eq!(w.frames(), msgs.len() as u64 + 1);
    let bytes = w.into_inner().unwrap();
    assert_eq!(bytes, expect);
    for n in [1, 3, 7, 1000] {
        let mut r = FrameReader::new(Trickle { data: &bytes, n });
        let mut got = Vec::new();
        while let Some(m) = r.next_message().unwrap() {
            got.push(m);
        }
        assert_eq!(got.len(), msgs.len() + 1);
        assert_eq!(got[..msgs.len()], msgs[..]);
    }
}

#[test]
fn a_log_batch_frame_length_is_known_without_encoding_it() {
    let recs: Vec<(u64, LogRecord)> = lb()
        .records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (10 + i as u64, r))
        .collect();
    for n in 0..=recs.len() {
        let mut out = Vec::new();
        LogBatchMsg::encode_numbered(1, &recs[..n], &mut out);
        assert_eq!(LogBatchMsg::numbered_len(&recs[..n]), out.len());
    }
}

#[test]
fn packet_from_borrowed_parts_is_the_encoded_frame() {
    let m = PacketMsg {
        id: 42,
        ts_ns: 1_700_000_000_123,
        source: 3,
        data: (0..=99u8).collect(),
    };
    let mut a = Vec::new();
    m.encode(&mut a);
    let mut b = Vec::new();
    PacketMsg::encode_parts(m.id, m.ts_ns, m.source, &m.data, &mut b);
    assert_eq!(a, b);
    let v = FrameView::new_checked(&b).unwrap();
    assert_eq!(
        PacketMsg::parts(&v).unwrap(),
        (m.id, m.ts_ns, m.source, &m.data[..])
    );
}

/// A snapshot written from borrowed parts (frame start queued, payload
/// written from the caller's memory) is byte for byte the encoded one,
/// after frames already queued; a reader that swaps its buffer out keeps
/// the frame and reads on into the buffer it got back.
#[test]
fn snapshot_written_in_two_pieces_is_the_encoded_frame() {
    let payload: Vec<u8> = (0..=250u8).cycle().take(100_000).collect();
    let cut = [(7u64, 9u64), (8, 10)];
    let mut w = FrameWriter::new(Vec::new());
    w.send(&Message::Heartbeat(hb())).unwrap();
    SnapshotMsg::write_parts(3, &cut, &payload, &mut w).unwrap();
    w.send(&Message::Heartbeat(hb())).unwrap();
    SnapshotPartMsg::write_parts(3, 5_000, 1_000, &payload[..4_000], &mut w).unwrap();
    assert_eq!(w.frames(), 4);
    let bytes = w.into_inner().unwrap();
    let mut expect = Vec::new();
    Message::Heartbeat(hb()).encode(&mut expect);
    SnapshotMsg::encode_parts(3, &cut, &payload, &mut expect);
    Message::Heartbeat(hb()).encode(&mut expect);
    SnapshotPartMsg::encode_parts(3, 5_000, 1_000, &payload[..4_000], &mut expect);
    assert_eq!(bytes, expect);

    let mut r = FrameReader::new(Trickle {
        data: &bytes,
        n: 777,
    });
    assert!(matches!(r.next_message(), Ok(Some(Message::Heartbeat(_)))));
    let v = r.next_frame().unwrap().unwrap();
    let (id, got_cut, got) = SnapshotMsg::parts(&v).unwrap();
    assert_eq!((id, got_cut, got), (3, cut.to_vec(), &payload[..]));
    let at = got.as_ptr() as usize - v.as_bytes().as_ptr() as usize;
    let mut kept = Vec::new();
    r.swap_buffer(&mut kept);
    assert_eq!(&kept[at..at + payload.len()], &payload[..]);
    assert!(matches!(r.next_message(), Ok(Some(Message::Heartbeat(_)))));
    let v = r.next_frame().unwrap().unwrap();
    assert_eq!(
        SnapshotPartMsg::parts(&v).unwrap(),
        (3, 5_000, 1_000, &payload[..4_000])
    );
    assert!(matches!(r.next_message(), Ok(None)));
}

#[test]
fn snapshot_pieces_reassemble_and_refuse_gaps() {
    let encoded: Vec<u8> = (0..=250u8).cycle().take(10_000).collect();
    let pieces: Vec<Vec<u8>> = encoded
        .chunks(3_000)
        .enumerate()
        .map(|(i, c)| {
            let mut f = Vec::new();
            SnapshotPartMsg::encode_parts(5, encoded.len() as u64, (i * 3_000) as u64, c, &mut f);
            f
        })
        .collect();
    let mut parts = SnapshotParts::default();
    for (i, f) in pieces.iter().enumerate() {
        let got = parts.add(&FrameView::new_checked(f).unwrap()).unwrap();
        if i + 1 < pieces.len() {
            assert!(got.is_none());
        } else {
            assert_eq!(got, Some((5, encoded.clone())));
        }
    }
    // A missing piece is an error, and a fresh first piece starts over.
    let mut parts = SnapshotParts::default();
    assert!(parts
        .add(&FrameView::new_checked(&pieces[0]).unwrap())
        .unwrap()
        .is_none());
    assert!(parts
        .add(&FrameView::new_checked(&pieces[2]).unwrap())
        .is_err());
    for f in &pieces {
        let _ = parts.add(&FrameView::new_checked(f).unwrap()).unwrap();
    }
    // A recycled buffer takes the next snapshot, and its contents do
    // not leak into it.
    let mut parts = SnapshotParts::default();
    let spare = vec![0xee; 20_000];
    let spare_at = spare.as_ptr();
    parts.recycle(spare);
    let mut last = None;
    for f in &pieces {
        last = parts.add(&FrameView::new_checked(f).unwrap()).unwrap();
    }
    let (_, got) = last.unwrap();
    assert_eq!(got, encoded);
    assert_eq!(got.as_ptr(), spare_at);
    // A piece past the snapshot's length is malformed.
    let mut f = Vec::new();
    SnapshotPartMsg::encode_parts(5, 10, 8, &[1, 2, 3], &mut f);
    assert!(SnapshotPartMsg::decode(&f).is_err());
}

/// A header that claims a 64 MiB payload, followed by a few bytes: the
/// reader reports the torn frame and has committed memory only for what
/// arrived (plus one step), not for what the header claimed.
#[test]
fn a_header_claiming_a_large_payload_reserves_only_what_arrives() {
    let mut b = HB.to_vec();
    let claimed = DEFAULT_MAX_PAYLOAD as u32;
    b[8..12].copy_from_slice(&claimed.to_le_bytes());
    b.extend_from_slice(&[0u8; 100]);
    let mut r = FrameReader::new(&b[..]);
    match r.next_frame() {
        Err(WireError::Truncated { need, have }) => {
            assert_eq!(need, HEADER_LEN + DEFAULT_MAX_PAYLOAD);
            assert_eq!(have, b.len());
        }
        other => panic!("want Truncated, got {other:?}"),
    }
    let mut buf = Vec::new();
    r.swap_buffer(&mut buf);
    assert!(
        buf.capacity() <= 2 * GROW_STEP + HEADER_LEN,
        "reserved {} bytes for 116 received",
        buf.capacity()
    );

    // A frame larger than one growth step still reads whole and checked.
    let data: Vec<u8> = (0..(3 * GROW_STEP + 12_345)).map(|i| i as u8).collect();
    let mut f = Vec::new();
    SnapshotPartMsg::encode_parts(7, data.len() as u64, 0, &data, &mut f);
    let mut r = FrameReader::new(&f[..]);
    let v = r.next_frame().expect("valid").expect("a frame");
    let (id, total, offset, got) = SnapshotPartMsg::parts(&v).expect("parts");
    assert_eq!((id, total, offset), (7, data.len() as u64, 0));
    assert_eq!(got, &data[..]);
    assert!(r.next_frame().expect("clean end").is_none());
}

/// A snapshot declared longer than the assembler's maximum is refused at
/// its first piece, before anything is reserved; one within it assembles.
#[test]
fn snapshot_assembly_refuses_a_declared_length_over_its_maximum() {
    let piece = |total: u64, offset: u64, data: &[u8]| {
        let mut f = Vec::new();
        SnapshotPartMsg::encode_parts(9, total, offset, data, &mut f);
        f
    };
    // 256 GiB declared: refused by the default limit.
    let mut parts = SnapshotParts::default();
    let f = piece(256 << 30, 0, &[1, 2, 3]);
    match parts.add(&FrameView::new_checked(&f).unwrap()) {
        Err(WireError::TooLarge { len, max }) => {
            assert_eq!(len as u64, 256 << 30);
            assert_eq!(max as u64, DEFAULT_MAX_SNAPSHOT);
        }
        other => panic!("want TooLarge, got {other:?}"),
    }
    // A configured maximum: 1000 bytes is the most.
    let mut parts = SnapshotParts::with_limit(1000);
    let f = piece(1001, 0, &[0; 10]);
    assert!(matches!(
        parts.add(&FrameView::new_checked(&f).unwrap()),
        Err(WireError::TooLarge {
            len: 1001,
            max: 1000
        })
    ));
    // The continuation of a refused snapshot is out of order, not assembled.
    let f = piece(1001, 10, &[0; 991]);
    assert!(parts.add(&FrameView::new_checked(&f).unwrap()).is_err());
    // Exactly at the maximum: assembled.
    let whole: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let a = piece(1000, 0, &whole[..600]);
    let b = piece(1000, 600, &whole[600..]);
    assert!(parts
        .add(&FrameView::new_checked(&a).unwrap())
        .unwrap()
        .is_none());
    assert_eq!(
        parts.add(&FrameView::new_checked(&b).unwrap()).unwrap(),
        Some((9, whole))
    );
}

/// An output frame decoded straight into a batch (the output logger's
/// path, `OutputMsg::push_into`) gives back every field of every output:
/// sink, input id, ordinal, timestamp, dependency vector (the clock
/// record's raise included) and bytes.
#[test]
fn output_frames_decode_into_a_batch_with_every_field() {
    use ftmb_core::depvec::DepVector;
    use ftmb_core::ft::OutputBatch;
    use ftmb_core::Packet;
    use ftmb_logger::wire::OutputMsg;

    let mut sent = OutputBatch::default();
    for (i, (sink, ordinal, dv, clock)) in [
        (0u16, 0u32, vec![3u64, 0], (1usize, 9u64)),
        (2, 1, vec![5, 7, 11], (0, 2)),
        (1, 0, vec![], (2, 4)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = Packet::from_bytes(&[i as u8 + 1; 60][..20 + 10 * i]);
        p.anno.id = 100 + i as u64;
        p.anno.ts_ns = 1_000 * (i as u64 + 1);
        sent.push((sink, ordinal), &p, &DepVector::from_entries(&dv), clock);
    }
    let mut bytes = Vec::new();
    for o in sent.iter() {
        OutputMsg::encode_ref(o, &mut bytes);
    }
    let mut got = OutputBatch::default();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let v = FrameView::new_checked(rest).expect("a whole frame");
        OutputMsg::push_into(&v, &mut got).expect("an output frame");
        rest = &rest[v.total_len()..];
    }
    assert_eq!(got.len(), 3);
    for (a, b) in sent.iter().zip(got.iter()) {
        assert_eq!(
            (a.sink, a.packet_id, a.ordinal, a.ts_ns, a.dv, a.data),
            (b.sink, b.packet_id, b.ordinal, b.ts_ns, b.dv, b.data)
        );
    }
    // The clock record's raise is in the vector that travelled.
    assert_eq!(got.iter().next().map(|o| o.dv.to_vec()), Some(vec![3, 9]));
}
