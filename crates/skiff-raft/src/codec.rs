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

/// A gRPC codec that writes bincode straight into tonic's frame buffer and reads it straight out
/// of the received frame, for replication: the protobuf `Payload` wrapper cost a fresh buffer per
/// append on both ends (bincode's `Vec`, then prost's copy of it), and on this kind of machine
/// fresh memory is paid for in page faults.
pub struct BincodeCodec<E, D>(std::marker::PhantomData<fn(E) -> D>);

impl<E, D> Default for BincodeCodec<E, D> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<E, D> tonic::codec::Codec for BincodeCodec<E, D>
where
    E: Serialize + Send + 'static,
    D: DeserializeOwned + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = BincodeEncoder<E>;
    type Decoder = BincodeDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        BincodeEncoder(std::marker::PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BincodeDecoder(std::marker::PhantomData)
    }
}

pub struct BincodeEncoder<E>(std::marker::PhantomData<fn(E)>);

impl<E: Serialize> tonic::codec::Encoder for BincodeEncoder<E> {
    type Item = E;
    type Error = tonic::Status;

    /// Sizes the buffer once before writing: grown write by write, a batch of entries was
    /// copied and faulted in again at every doubling (2% of a leader under pod creates).
    fn encode(&mut self, item: E, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        let encoding = |e| tonic::Status::internal(format!("encode: {e}"));
        let size = bincode::serialized_size(&item).map_err(encoding)?;
        dst.reserve(usize::try_from(size).unwrap_or(0));
        bincode::serialize_into(dst.writer(), &item).map_err(encoding)
    }
}

pub struct BincodeDecoder<D>(std::marker::PhantomData<fn() -> D>);

impl<D: DeserializeOwned> tonic::codec::Decoder for BincodeDecoder<D> {
    type Item = D;
    type Error = tonic::Status;

    /// A peer's bytes that do not decode are `InvalidArgument`; nothing is applied from them.
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<D>, tonic::Status> {
        use bytes::Buf;
        let len = src.remaining();
        // tonic hands over a whole frame; it is contiguous unless tonic changes how it buffers.
        let value = if src.chunk().len() == len {
            let value = bincode::deserialize(src.chunk());
            src.advance(len);
            value
        } else {
            bincode::deserialize_from(src.reader())
        };
        value.map(Some).map_err(|e| tonic::Status::invalid_argument(format!("undecodable message: {e}")))
    }
}
