//! Prints what an input holds: `cargo run -p fuzz --example inspect -- FILE`.
use fuzz::mutate::{Change, Chunk, Msg};
use shared::sync::WireMessage;

fn main() {
    for file in std::env::args().skip(1) {
        let bytes = std::fs::read(&file).unwrap();
        let message = WireMessage::decode(&bytes);
        println!("{file}: {} bytes", bytes.len());
        let Ok(
            WireMessage::Sync { sender_id, document_id, data, .. }
            | WireMessage::Request { sender_id, document_id, data, .. },
        ) = message
        else {
            println!("  {message:?}");
            continue;
        };
        println!("  sender {sender_id}, document {document_id}, {} bytes of data", data.len());
        let Some(msg) = Msg::parse(&data) else {
            println!("  data does not parse");
            continue;
        };
        println!(
            "  version {:#x}, {} heads, {} need, {} haves, {} change blobs, flags {:?}",
            msg.version,
            msg.heads.len(),
            msg.need.len(),
            msg.haves.len(),
            msg.changes.len(),
            msg.flags
        );
        for (i, (last, bloom)) in msg.haves.iter().enumerate() {
            println!(
                "  have {i}: {} last sync, bloom {:02x?}",
                last.len(),
                &bloom[..bloom.len().min(16)]
            );
        }
        for (i, blob) in msg.changes.iter().enumerate() {
            for chunk in Chunk::split(blob) {
                println!("  blob {i}: chunk type {} of {} bytes", chunk.kind, chunk.data.len());
                if let Some(c) = Change::parse(&chunk.data) {
                    println!(
                        "    deps {}, actor {:02x?}, seq {}, start {}, time {}, message {:?}",
                        c.deps.len(),
                        c.actor,
                        c.seq,
                        c.start_op,
                        c.time,
                        String::from_utf8_lossy(&c.message)
                    );
                    for o in &c.others {
                        println!("    other actor {o:02x?}");
                    }
                    for (spec, data) in &c.columns {
                        println!("    column {spec:#x}: {:02x?}", &data[..data.len().min(48)]);
                    }
                    if !c.extra.is_empty() {
                        println!("    extra {:02x?}", c.extra);
                    }
                }
            }
        }
    }
}
