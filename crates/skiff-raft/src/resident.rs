//! Objects under a few key prefixes, held in memory as well as in RocksDB.
//!
//! Some small objects are read far more often than they are written: the API server reads an
//! object's namespace on every create into it. A RocksDB read walks the memtables and every
//! level-0 file before it finds an old key, and under pod creates that read and its decoding
//! were 4% of the leader's CPU. Answering such keys from a map costs a hash lookup.
//!
//! # Contract
//!
//! * The map holds exactly the objects under the configured prefixes that RocksDB holds: it is
//!   loaded when the state machine opens, reloaded when a snapshot is installed, and updated by
//!   every `apply` after its batch is written and before its clients are answered or the
//!   applied index moves. A read served here therefore sees every write a read of RocksDB
//!   would, including the caller's own acknowledged writes.
//! * Only keys under a prefix are answered here; [`Resident::get`] says `None` for others.

use std::collections::HashMap;
use std::io;

use parking_lot::RwLock;
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::DB;

use crate::codec::decode;
use crate::datadir::CF_KV;
use crate::state_machine::StoredObject;

pub struct Resident {
    prefixes: Vec<String>,
    objects: RwLock<HashMap<String, StoredObject>>,
}

impl Resident {
    /// Holds the objects under `prefixes`, read from `db`.
    pub fn load(db: &DB, prefixes: Vec<String>) -> io::Result<Self> {
        let resident = Self { prefixes, objects: RwLock::new(HashMap::new()) };
        resident.reload(db)?;
        Ok(resident)
    }

    fn covers(&self, key: &str) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Replaces the map with what `db` holds under the prefixes.
    pub fn reload(&self, db: &DB) -> io::Result<()> {
        let cf = db.cf_handle(CF_KV).ok_or_else(|| io::Error::other(format!("column family {CF_KV} missing")))?;
        let mut objects = HashMap::new();
        for prefix in &self.prefixes {
            for item in db.iterator_cf(cf, IteratorMode::From(prefix.as_bytes(), Direction::Forward)) {
                let (k, v) = item.map_err(io::Error::other)?;
                if !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                let key = String::from_utf8(k.to_vec()).map_err(io::Error::other)?;
                objects.insert(key, decode::<StoredObject>(&v)?);
            }
        }
        *self.objects.write() = objects;
        Ok(())
    }

    /// The object at `key` (`Some(None)`: absent), or `None` when `key` is not under a prefix.
    pub fn get(&self, key: &str) -> Option<Option<StoredObject>> {
        self.covers(key).then(|| self.objects.read().get(key).cloned())
    }

    /// Takes in one applied batch's writes (`None`: deleted).
    pub fn apply<'a>(&self, writes: impl IntoIterator<Item = (&'a String, &'a Option<StoredObject>)>) {
        let mut mine = writes.into_iter().filter(|(key, _)| self.covers(key)).peekable();
        if mine.peek().is_none() {
            return;
        }
        let mut objects = self.objects.write();
        for (key, obj) in mine {
            match obj {
                Some(o) => objects.insert(key.clone(), o.clone()),
                None => objects.remove(key),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;
    use crate::datadir;

    fn object(value: &str, revision: u64) -> StoredObject {
        StoredObject {
            value: bytes::Bytes::copy_from_slice(value.as_bytes()),
            revision,
            create_revision: revision,
            uid: format!("u{revision}"),
        }
    }

    fn put(db: &DB, key: &str, obj: &StoredObject) {
        let cf = db.cf_handle(CF_KV).expect("kv");
        db.put_cf(cf, key, encode(obj).expect("encode")).expect("put");
    }

    fn value(got: Option<Option<StoredObject>>) -> Option<Option<Vec<u8>>> {
        got.map(|o| o.map(|o| o.value.to_vec()))
    }

    #[test]
    fn holds_what_the_database_holds_under_its_prefixes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = datadir::open(&dir.path().join("data"), 1).expect("datadir");
        let db = &data.db;
        put(db, "/ns/a", &object("a1", 1));
        put(db, "/ns/b", &object("b1", 2));
        put(db, "/nsx", &object("x", 3));
        put(db, "/pods/p", &object("p", 4));

        let resident = Resident::load(db, vec!["/ns/".into()]).expect("load");
        assert_eq!(value(resident.get("/ns/a")), Some(Some(b"a1".to_vec())));
        assert_eq!(resident.get("/ns/a").and_then(|o| o).map(|o| (o.revision, o.uid)), Some((1, "u1".into())));
        assert_eq!(value(resident.get("/ns/missing")), Some(None), "absent under a prefix is an answer");
        assert_eq!(value(resident.get("/nsx")), None, "a key merely sharing the prefix's letters is not covered");
        assert_eq!(value(resident.get("/pods/p")), None, "keys under no prefix go to the database");

        let writes: HashMap<String, Option<StoredObject>> = [
            ("/ns/a".to_string(), Some(object("a2", 5))),
            ("/ns/b".to_string(), None),
            ("/ns/c".to_string(), Some(object("c1", 5))),
            ("/pods/q".to_string(), Some(object("q", 5))),
        ]
        .into();
        resident.apply(&writes);
        assert_eq!(value(resident.get("/ns/a")), Some(Some(b"a2".to_vec())), "an update replaces");
        assert_eq!(value(resident.get("/ns/b")), Some(None), "a delete removes");
        assert_eq!(value(resident.get("/ns/c")), Some(Some(b"c1".to_vec())), "a create adds");
        assert_eq!(resident.objects.read().len(), 2, "writes outside the prefixes are not held");

        // A snapshot install rewrites the database; reloading forgets what it no longer holds.
        let cf = db.cf_handle(CF_KV).expect("kv");
        db.delete_cf(cf, "/ns/a").expect("delete");
        put(db, "/ns/d", &object("d1", 6));
        resident.reload(db).expect("reload");
        assert_eq!(value(resident.get("/ns/a")), Some(None));
        assert_eq!(value(resident.get("/ns/c")), Some(None), "c was only ever applied in memory here");
        assert_eq!(value(resident.get("/ns/d")), Some(Some(b"d1".to_vec())));
    }
}
