//! Every byte layout the store writes, in one place, with the format version that names them.
//!
//! | what | layout |
//! |---|---|
//! | a record | MessagePack with field names of `{"Moment" \| "Profile" \| "Retract": ...}` ([`encode_record_into`]) |
//! | a segment (one append's records) | each record as a u32 (LE) length, then its bytes ([`encode_segment`]) |
//! | a change | MessagePack with field names of `(after, change)` ([`encode_change`]) |
//! | a snapshot | MessagePack with field names of a [`Snapshot`] (bulk items as tuples), with its own [`SNAPSHOT_VERSION`], checked by a [`snapshot_checksum`] |
//! | a module | its bytes, named by their SHA-256 in hex ([`module_hash`]) |
//!
//! Named MessagePack (maps with field names) so that a later version reads what an earlier one
//! wrote: a field added with a default reads as that default. A change that cannot be read
//! that way bumps [`FORMAT_VERSION`]; a store records the version it was created with, and a
//! build refuses, saying so, a store of a version it does not know ([`check_version`]).
//!
//! **Owns** the layouts; **must not touch** the backend (which stores these bytes where it
//! likes) or the meaning of what it encodes.

use std::sync::Arc;

use plaudit_core::ids::{OrgId, Seq};
use plaudit_core::journal::FeedItem;
use plaudit_core::ruleset::Format;
use plaudit_core::snapshot::WorldSnapshot;
use plaudit_sdk::{Moment, Record, Retraction, Stakeholder};
use serde::{Deserialize, Serialize};

use crate::{Change, StoreError};

/// The version of the layouts a store is written in. 1: the layouts of this module (the first
/// released; stores written before versions were kept are this one too, and are stamped with it
/// when first opened).
pub const FORMAT_VERSION: u64 = 1;

/// The version of the [`Snapshot`] layout. A snapshot of another version is not read: the log is
/// replayed instead (a snapshot is a cache of the log).
pub const SNAPSHOT_VERSION: u64 = 5;

/// Whether a store of format `found` can be read by this build.
pub fn check_version(found: u64) -> Result<(), String> {
    if found == FORMAT_VERSION {
        Ok(())
    } else if found > FORMAT_VERSION {
        Err(format!(
            "it was written by a newer Plaudit (store format {found}; this build reads format {FORMAT_VERSION}): run that version, or a newer one"
        ))
    } else {
        Err(format!(
            "it is of store format {found}, which this build no longer reads (it reads format {FORMAT_VERSION})"
        ))
    }
}

/// The stored encoding of a [`Record`]. `Record` itself only serializes (to its JSON-lines
/// shape); this tagged form round-trips and is the one on disk.
#[derive(Deserialize)]
enum StoredRecord {
    Moment(Moment),
    Profile(Stakeholder),
    Retract(Retraction),
}

/// The borrowed twin of [`StoredRecord`], for encoding without a copy. Variant names must match.
#[derive(Serialize)]
enum StoredRecordRef<'a> {
    Moment(&'a Moment),
    Profile(&'a Stakeholder),
    Retract(&'a Retraction),
}

impl<'a> From<&'a Record> for StoredRecordRef<'a> {
    fn from(r: &'a Record) -> Self {
        match r {
            Record::Moment(m) => StoredRecordRef::Moment(m),
            Record::Profile(p) => StoredRecordRef::Profile(p),
            Record::Retract(r) => StoredRecordRef::Retract(r),
        }
    }
}

impl From<StoredRecord> for Record {
    fn from(s: StoredRecord) -> Self {
        match s {
            StoredRecord::Moment(m) => Record::Moment(m),
            StoredRecord::Profile(p) => Record::Profile(p),
            StoredRecord::Retract(r) => Record::Retract(r),
        }
    }
}

/// Appends the stored encoding of `record` to `buf`.
pub fn encode_record_into(org: &OrgId, record: &Record, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    rmp_serde::encode::write_named(buf, &StoredRecordRef::from(record))
        .map_err(|source| StoreError::Encode { org: org.clone(), source })
}

/// The record [`encode_record_into`] wrote (it is record `seq` of `org`, for errors).
pub fn decode_record(org: &OrgId, seq: Seq, bytes: &[u8]) -> Result<Record, StoreError> {
    rmp_serde::from_slice::<StoredRecord>(bytes).map(Record::from).map_err(|source| StoreError::Decode {
        org: org.clone(),
        seq,
        source,
    })
}

/// The bytes of a segment holding `records`: each after its length (u32, little-endian).
pub fn encode_segment(org: &OrgId, records: &[Record]) -> Result<Vec<u8>, StoreError> {
    let mut segment = Vec::new();
    for record in records {
        let at = segment.len();
        segment.extend_from_slice(&[0; 4]);
        encode_record_into(org, record, &mut segment)?;
        let len = segment.len() - at - 4;
        let len = u32::try_from(len).map_err(|_| StoreError::Encode {
            org: org.clone(),
            source: rmp_serde::encode::Error::Syntax(format!("a record of {len} bytes")),
        })?;
        segment[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    Ok(segment)
}

/// The records of the segment of `org` whose first record is `first`, `bytes` as
/// [`encode_segment`] wrote them, those after record `after` only.
pub fn decode_segment(org: &OrgId, first: u64, after: u64, mut bytes: &[u8]) -> Result<Vec<Record>, StoreError> {
    let mut records = Vec::new();
    let mut seq = first;
    while !bytes.is_empty() {
        let torn = || StoreError::Damaged {
            op: "read",
            message: format!("organisation {org}: segment at {first} is cut short"),
        };
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(torn)?;
        let len = u32::from_le_bytes(*len) as usize;
        let record = rest.get(..len).ok_or_else(torn)?;
        bytes = &rest[len..];
        if seq > after {
            records.push(decode_record(org, Seq(seq), record)?);
        }
        seq += 1;
    }
    Ok(records)
}

/// The bytes of change `change` logged after record `after`.
pub fn encode_change(org: &OrgId, after: Seq, change: &Change) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(&(after.0, change)).map_err(|source| StoreError::Encode { org: org.clone(), source })
}

/// The change [`encode_change`] wrote (change `number` of `org`, for errors) and its position.
pub fn decode_change(org: &OrgId, number: u64, bytes: &[u8]) -> Result<(Seq, Change), StoreError> {
    rmp_serde::from_slice::<(u64, Change)>(bytes)
        .map(|(after, change)| (Seq(after), change))
        .map_err(|source| StoreError::DecodeChange { org: org.clone(), number, source })
}

/// The hex SHA-256 of a module: its name in the store.
pub fn module_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An organisation as a snapshot holds it: its world, and what the log step knew at that point.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`] when written.
    pub version: u64,
    pub org: String,
    pub rules_version: u64,
    pub rules_text: String,
    pub rules_format: Format,
    pub rules_after: u64,
    /// Changes of the log applied (the log's changes numbered up to this).
    pub changes: u64,
    /// Plugins installed: name, module hash, the record they took effect after.
    pub plugins: Vec<(String, String, u64)>,
    /// Effects produced since the first record (the next effect's number is one more).
    pub effects: u64,
    /// The effects feed as it was (the last effects, up to its capacity, the last numbered
    /// `effects`), so that a restart keeps every effect a reader or a webhook may still need:
    /// the replay of the log after the snapshot adds the rest.
    pub feed: Vec<Arc<FeedItem>>,
    pub world: WorldSnapshot,
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("cannot decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("it is of snapshot version {0}; this build reads version {SNAPSHOT_VERSION}")]
    Version(u64),
}

/// The bytes of `snapshot`.
pub fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, SnapshotError> {
    Ok(rmp_serde::to_vec_named(snapshot)?)
}

/// The snapshot [`encode_snapshot`] wrote, if it is of this build's version.
///
/// Decoded in one pass: reading the version alone first would walk the whole snapshot twice
/// (MessagePack cannot skip a map's other entries unread). Only a snapshot that fails to decode
/// is read again for its version, to say why.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    /// Just the version: a snapshot of another version may not decode as a whole.
    #[derive(Deserialize)]
    struct Versioned {
        version: u64,
    }
    let version = |snapshot_error| match rmp_serde::from_slice::<Versioned>(bytes) {
        Ok(Versioned { version }) if version != SNAPSHOT_VERSION => SnapshotError::Version(version),
        _ => snapshot_error,
    };
    match rmp_serde::from_slice::<Snapshot>(bytes) {
        Ok(snapshot) if snapshot.version == SNAPSHOT_VERSION => Ok(snapshot),
        Ok(snapshot) => Err(SnapshotError::Version(snapshot.version)),
        Err(e) => Err(version(SnapshotError::Decode(e))),
    }
}

/// The snapshot's length (high 32 bits) and the CRC-32 (IEEE) of its sequence (little-endian)
/// and its bytes (low 32 bits). Not cryptographic: it detects torn, truncated or flipped bytes,
/// not tampering. CRC-32 because it runs at memory speed (crc32fast uses the CPU's carry-less
/// multiply): checking a 200 MB snapshot takes milliseconds, where a byte-at-a-time FNV-1a took
/// 300 ms of a restart.
pub fn snapshot_checksum(seq: Seq, bytes: &[u8]) -> u64 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.0.to_le_bytes());
    crc.update(bytes);
    ((bytes.len() as u64 & 0xFFFF_FFFF) << 32) | u64::from(crc.finalize())
}

#[cfg(test)]
mod tests {
    use plaudit_core::application::Mode;
    use plaudit_sdk::{Effect, EffectKind};

    use super::*;

    fn org() -> OrgId {
        OrgId::parse("acme").expect("an id")
    }

    fn records() -> Vec<Record> {
        let mut moment = Moment {
            id: "m1".into(),
            stakeholder: "ann".into(),
            counterpart: Some("bob".into()),
            kind: "meetup".into(),
            channel: "event".into(),
            at: "2026-03-02T10:00:00Z".into(),
            value: Some(2.5),
            attrs: Default::default(),
        };
        moment.attrs.insert("accepted".into(), plaudit_sdk::Value::Bool(true));
        let profile = Stakeholder {
            id: "ann".into(),
            kind: "employee".into(),
            team: Some("sales".into()),
            name: Some("Ann".into()),
            attrs: Default::default(),
        };
        vec![
            Record::Moment(moment),
            Record::Profile(profile),
            Record::Retract(Retraction { retract: "m1".into(), reason: Some("spam".into()) }),
        ]
    }

    #[test]
    fn records_and_segments_round_trip() {
        let records = records();
        let bytes = encode_segment(&org(), &records).expect("encodes");
        assert_eq!(decode_segment(&org(), 1, 0, &bytes).expect("decodes"), records);
        assert_eq!(decode_segment(&org(), 1, 2, &bytes).expect("decodes"), records[2..], "after record 2");
        let cut = &bytes[..bytes.len() - 1];
        assert!(matches!(decode_segment(&org(), 1, 0, cut), Err(StoreError::Damaged { .. })));
    }

    #[test]
    fn every_change_round_trips() {
        let changes = [
            Change::Rules { text: "[organisation]\nid = \"acme\"\n".into(), format: Format::Toml },
            Change::InstallPlugin { name: "p".into(), module: module_hash(b"wasm") },
            Change::RemovePlugin { name: "p".into() },
            Change::History { mode: Mode::Additive, timeouts: vec![("p".into(), vec![(3, 2)])] },
            Change::PluginTimeouts { name: "p".into(), seqs: vec![4] },
            Change::PluginCallsTimedOut { name: "p".into(), calls: vec![(5, 1), (6, 512)] },
        ];
        for change in changes {
            let bytes = encode_change(&org(), Seq(9), &change).expect("encodes");
            assert_eq!(decode_change(&org(), 1, &bytes).expect("decodes"), (Seq(9), change));
        }
    }

    #[test]
    fn a_history_change_without_timeouts_reads_with_none() {
        // As the build before call timeouts were kept with an application wrote it.
        #[derive(Serialize)]
        enum Old {
            History { mode: Mode },
        }
        let bytes = rmp_serde::to_vec_named(&(4u64, Old::History { mode: Mode::Rebase })).expect("encodes");
        assert_eq!(
            decode_change(&org(), 1, &bytes).expect("decodes"),
            (Seq(4), Change::History { mode: Mode::Rebase, timeouts: vec![] })
        );
    }

    #[test]
    fn a_snapshot_round_trips_and_one_of_another_version_is_refused() {
        let effect = Effect {
            moment: "m1".into(),
            stakeholder: "ann".into(),
            source: "helper".into(),
            kind: EffectKind::BadgeEarned { badge: "helper".into(), tier: Some("gold".into()), count: 3 },
        };
        let world = plaudit_core::OrgWorld::from_doc(
            &plaudit_core::ruleset::parse_toml("[organisation]\nid = \"acme\"\n[[currency]]\nid = \"xp\"\n", "t")
                .expect("parses"),
            "t",
        )
        .expect("compiles")
        .snapshot();
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            org: "acme".into(),
            rules_version: 2,
            rules_text: "rules".into(),
            rules_format: Format::Json,
            rules_after: 7,
            changes: 3,
            plugins: vec![("p".into(), module_hash(b"w"), 7)],
            effects: 8,
            feed: vec![Arc::new(FeedItem { id: 8, seq: 7, effect })],
            world,
        };
        let bytes = encode_snapshot(&snapshot).expect("encodes");
        let back = decode_snapshot(&bytes).expect("decodes");
        assert_eq!(encode_snapshot(&back).expect("encodes again"), bytes, "the same bytes again");
        assert_eq!((back.feed, back.plugins, back.effects), (snapshot.feed.clone(), snapshot.plugins.clone(), 8));
        let newer = Snapshot { version: SNAPSHOT_VERSION + 1, ..snapshot };
        let bytes = encode_snapshot(&newer).expect("encodes");
        assert!(matches!(decode_snapshot(&bytes), Err(SnapshotError::Version(v)) if v == SNAPSHOT_VERSION + 1));
        // A version whose layout this build cannot decode at all is still refused by version.
        #[derive(Serialize)]
        struct Reshaped {
            version: u64,
            world: &'static str,
        }
        let bytes =
            rmp_serde::to_vec_named(&Reshaped { version: SNAPSHOT_VERSION + 1, world: "elsewhere" }).expect("encodes");
        assert!(matches!(decode_snapshot(&bytes), Err(SnapshotError::Version(v)) if v == SNAPSHOT_VERSION + 1));
    }

    #[test]
    fn module_hashes_are_hex_sha256() {
        assert_eq!(module_hash(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn snapshot_checksum_is_the_length_and_a_crc32_of_seq_then_bytes() {
        // The CRC-32 (IEEE) check value: "123456789" -> 0xCBF43926.
        let mut crc = crc32fast::Hasher::new();
        crc.update(b"123456789");
        assert_eq!(crc.finalize(), 0xCBF4_3926);
        let mut framed = 7u64.to_le_bytes().to_vec();
        framed.extend_from_slice(b"snapshot");
        assert_eq!(snapshot_checksum(Seq(7), b"snapshot"), (8 << 32) | u64::from(crc32fast::hash(&framed)));
        // The sequence is covered, and so is the length.
        assert_ne!(snapshot_checksum(Seq(7), b"snapshot"), snapshot_checksum(Seq(8), b"snapshot"));
        assert_ne!(snapshot_checksum(Seq(7), b"snapshot"), snapshot_checksum(Seq(7), b"snapshot\0"));
    }

    #[test]
    fn versions_this_build_does_not_know_are_refused_saying_which() {
        assert!(check_version(FORMAT_VERSION).is_ok());
        assert!(check_version(FORMAT_VERSION + 1).expect_err("newer").contains("newer Plaudit"));
        assert!(check_version(0).expect_err("older").contains("no longer reads"));
    }
}
