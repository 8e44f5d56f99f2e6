//! Applies an input's changes to its world document and reloads the result:
//! `cargo run -p fuzz --example reload -- FILE`.
use automerge::ReadDoc;
use automerge::sync::{self, SyncDoc};
use shared::sync::{WireMessage, decode_doc_id};

fn main() {
    let world = fuzz::World::new();
    for file in std::env::args().skip(1) {
        let bytes = std::fs::read(&file).unwrap();
        let Ok(WireMessage::Sync { sender_id, document_id, data, .. }) =
            WireMessage::decode(&bytes)
        else {
            continue;
        };
        let target = world.target(decode_doc_id(&document_id).unwrap(), &sender_id).unwrap();
        let mut fork = target.doc.clone();
        let message = sync::Message::decode(&data).unwrap();
        for change in message.changes.iter() {
            let change = automerge::Change::try_from(change).unwrap();
            println!(
                "change start {} max {} deps {:?}",
                change.start_op(),
                change.max_op(),
                change.deps().len()
            );
            for dep in change.deps() {
                println!(
                    "  dep max op {:?}",
                    target.doc.get_change_by_hash(dep).map(|c| c.max_op())
                );
            }
        }
        fork.receive_sync_message(&mut sync::State::new(), message).unwrap();
        println!("applied; heads {:?}", fork.get_heads().len());
        match automerge::Automerge::load(&fork.save()) {
            Ok(doc) => println!("reloads: {} heads", doc.get_heads().len()),
            Err(e) => println!("does not reload: {e}"),
        }
        let mut replica = automerge::Automerge::new();
        let mut state = sync::State::new();
        let mut server_state = sync::State::new();
        let mut server = fork.clone();
        for _ in 0..4 {
            if let Some(m) = replica.generate_sync_message(&mut state) {
                server.receive_sync_message(&mut server_state, m).unwrap();
            }
            if let Some(m) = server.generate_sync_message(&mut server_state)
                && let Err(e) = replica.receive_sync_message(&mut state, m)
            {
                println!("a fresh replica fails to sync: {e}");
                break;
            }
        }
        println!("fresh replica heads {}", replica.get_heads().len());
    }
}
