//! Reading the SQLite tables of an NSS database: every row of `nssPublic`
//! (cert9.db) or `nssPrivate` (key4.db) as a PKCS#11 object, and the
//! `metaData` rows of key4.db.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// One stored PKCS#11 object: its row id and its attributes (type →
/// value; an attribute that is present but empty has an empty value).
#[derive(Debug, Clone, Default)]
pub(crate) struct Object {
    /// The row id (NSS's object handle without its type bits).
    pub id: u32,
    /// Attribute values by PKCS#11 attribute type.
    pub attrs: HashMap<u32, Vec<u8>>,
}

impl Object {
    /// The value of `attr`, if present.
    pub(crate) fn get(&self, attr: u32) -> Option<&[u8]> {
        self.attrs.get(&attr).map(Vec::as_slice)
    }

    /// A CK_ULONG attribute (4 bytes, big-endian).
    pub(crate) fn ulong(&self, attr: u32) -> Option<u32> {
        let bytes: [u8; 4] = self.get(attr)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }
}

/// NSS's encoding of a present but empty value.
const EMPTY_VALUE: [u8; 3] = [0xa5, 0x00, 0x5a];

/// Opens `path` read-only (NSS daemons may hold it open for writing).
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Every object of `table` (`nssPublic` or `nssPrivate`). Columns are
/// found at run time: NSS adds them as attributes are first used.
pub(crate) fn objects(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Object>> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\""))?;
    let columns: Vec<Option<u32>> = stmt
        .column_names()
        .iter()
        .map(|name| {
            name.strip_prefix('a')
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        })
        .collect();
    let id_column = stmt.column_index("id")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(id_column)?;
        let mut object = Object {
            id: u32::try_from(id).unwrap_or(0),
            attrs: HashMap::new(),
        };
        for (index, attr) in columns.iter().enumerate() {
            let Some(attr) = attr else { continue };
            let value: Option<Vec<u8>> = match row.get_ref(index)? {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => {
                    Some(if b == EMPTY_VALUE {
                        Vec::new()
                    } else {
                        b.to_vec()
                    })
                }
                rusqlite::types::ValueRef::Integer(_) | rusqlite::types::ValueRef::Real(_) => None,
            };
            if let Some(value) = value {
                object.attrs.insert(*attr, value);
            }
        }
        out.push(object);
    }
    Ok(out)
}

/// key4.db's `metaData` rows: id → (item1, item2).
pub(crate) type MetaRows = HashMap<String, (Vec<u8>, Vec<u8>)>;

/// The `metaData` rows of key4.db: id → (item1, item2).
pub(crate) fn metadata(conn: &Connection) -> rusqlite::Result<MetaRows> {
    let mut stmt = conn.prepare("SELECT id, item1, item2 FROM metaData")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next()? {
        let blob = |i: usize| -> rusqlite::Result<Vec<u8>> {
            Ok(match row.get_ref(i)? {
                rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => {
                    b.to_vec()
                }
                _ => Vec::new(),
            })
        };
        let id: String = match row.get_ref(0)? {
            rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                String::from_utf8_lossy(t).into_owned()
            }
            _ => continue,
        };
        out.insert(id, (blob(1)?, blob(2)?));
    }
    Ok(out)
}
