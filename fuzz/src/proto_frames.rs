//! `proto_frames`: the agent protocol's decoders, as both ends use them: the host
//! decoding what an agent (micro guest or Linux /init) sends, and an agent
//! decoding what the host sends. Both go through `Frame::decode`,
//! `FrameDecoder` (bytes arriving in arbitrary pieces) and
//! `Message::decode_payload`, so one target covers both directions.
//!
//! Besides "never panic", it checks the codec's promises: a decoded frame
//! re-encodes to a frame that decodes to the same value; `consumed` never exceeds
//! the input; the streaming decoder yields exactly what one-shot decoding of the
//! same bytes yields.

use kvmsandbox_proto::{Frame, FrameDecoder, Message};

use crate::input::Input;

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let rest = inp.rest();
    match mode % 3 {
        0 => one_shot(rest),
        1 => streaming(&mut inp),
        _ => payload(&mut inp),
    }
}

/// Decodes frames back to back from `buf`, as the one-shot reference.
fn decode_all(buf: &[u8]) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    let mut off = 0;
    loop {
        match Frame::decode(&buf[off..]) {
            Ok(Some((f, used))) => {
                assert!(
                    used > 0 && used <= buf.len() - off,
                    "consumed {used} of {}",
                    buf.len() - off
                );
                round_trip(&f);
                frames.push(f);
                off += used;
            }
            Ok(None) => return (frames, false),
            Err(_) => return (frames, true),
        }
    }
}

fn one_shot(buf: &[u8]) {
    let _ = decode_all(buf);
}

fn round_trip(f: &Frame) {
    let bytes = f
        .encode()
        .expect("a decoded frame fits in MAX_FRAME when re-encoded");
    match Frame::decode(&bytes) {
        Ok(Some((g, used))) => {
            assert_eq!(used, bytes.len(), "re-encoded frame not consumed whole");
            assert_eq!(&g, f, "frame changed across encode/decode");
        }
        other => panic!(
            "re-encoded {} frame does not decode: {other:?}",
            f.msg.name()
        ),
    }
}

/// Feeds the bytes in pieces whose sizes come from the input.
fn streaming(inp: &mut Input) {
    let cuts = inp.u8() % 8;
    let sizes: Vec<usize> = (0..cuts).map(|_| usize::from(inp.u8())).collect();
    let buf = inp.rest();
    let (want, want_err) = decode_all(buf);

    let mut dec = FrameDecoder::new();
    let mut got = Vec::new();
    let mut got_err = false;
    let mut off = 0;
    let mut pieces = sizes.into_iter();
    while off < buf.len() && !got_err {
        let n = pieces.next().unwrap_or(buf.len()).min(buf.len() - off);
        dec.feed(&buf[off..off + n]);
        off += n;
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => got.push(f),
                Ok(None) => break,
                Err(_) => {
                    got_err = true;
                    break;
                }
            }
        }
    }
    if !got_err {
        assert_eq!(got, want, "streaming and one-shot decoding disagree");
        assert!(
            !want_err,
            "one-shot decoding failed where streaming did not"
        );
    } else {
        assert!(want_err, "streaming decoding failed where one-shot did not");
        assert!(got.len() <= want.len());
        assert_eq!(got[..], want[..got.len()]);
    }
}

/// A payload of every message type, without a frame header.
fn payload(inp: &mut Input) {
    let ty = inp.u16();
    // Mostly known types (the header check rejects the rest before payload decoding).
    let ty = if ty & 0x8000 == 0 { known_type(ty) } else { ty };
    let body = inp.rest();
    if let Ok(msg) = Message::decode_payload(ty, body) {
        assert_eq!(
            msg.msg_type(),
            ty,
            "decoded {} from type {ty:#x}",
            msg.name()
        );
        let mut out = Vec::new();
        msg.encode_payload(&mut out);
        match Message::decode_payload(ty, &out) {
            Ok(again) => assert_eq!(again, msg, "message changed across encode/decode"),
            Err(e) => panic!("re-encoded {} does not decode: {e}", msg.name()),
        }
    }
}

fn known_type(i: u16) -> u16 {
    // Probe the known type numbers in order; they are all below 0x100.
    (0u16..0x100)
        .filter(|t| Message::is_known_type(*t))
        .cycle()
        .nth(usize::from(i % 64))
        .unwrap_or(0)
}
