//! Byte encodings for values that cross the disk or the network.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes with bincode. Encoding our own types into a `Vec` cannot fail short of a serde bug,
/// which is reported as `io::Error` for the storage traits.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, std::io::Error> {
    bincode::serialize(value).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Decodes bincode; malformed bytes (corruption, a foreign peer) are `InvalidData`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, std::io::Error> {
    bincode::deserialize(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Big-endian so that RocksDB's byte order is log order.
pub fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub fn index_from_key(key: &[u8]) -> Result<u64, std::io::Error> {
    let arr: [u8; 8] =
        key.try_into().map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "log key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}
