//! Event decoding over arbitrary payloads. Input: a little-endian u16 kind code,
//! then the payload. Decoding must never panic, and whatever decodes must survive
//! an encode/decode round trip unchanged.
#![no_main]

use lessor_engine::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((kind, payload)) = data.split_first_chunk::<2>() else {
        return;
    };
    let kind = u16::from_le_bytes(*kind);
    if let Ok(event) = Event::decode(kind, payload) {
        assert_eq!(event.kind().code(), kind, "decoded as another kind");
        let reencoded = event.encode_payload();
        let again = Event::decode(kind, &reencoded)
            .unwrap_or_else(|e| panic!("re-encoding of {event:?} does not decode: {e}"));
        assert_eq!(again, event, "round trip changed the event");
    }
});
