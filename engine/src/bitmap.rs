//! A growable bitmap with FAISS's layout (bit i is `bytes[i / 8] >> (i % 8) & 1`), so
//! it can be handed to an id selector without conversion.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitmap {
    bytes: Vec<u8>,
    len: usize,
    ones: usize,
}

impl Bitmap {
    pub fn new(len: usize) -> Self {
        Bitmap { bytes: vec![0; len.div_ceil(8)], len, ones: 0 }
    }
    pub fn full(len: usize) -> Self {
        let mut b = Bitmap::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }
    pub fn from_bytes(bytes: Vec<u8>, len: usize) -> Option<Self> {
        if bytes.len() != len.div_ceil(8) {
            return None;
        }
        let mut b = Bitmap { bytes, len, ones: 0 };
        // Bits past `len` must be clear, or the count would be wrong.
        if !len.is_multiple_of(8) {
            if let Some(last) = b.bytes.last_mut() {
                *last &= (1u8 << (len % 8)) - 1;
            }
        }
        b.ones = b.bytes.iter().map(|x| x.count_ones() as usize).sum();
        Some(b)
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn count_ones(&self) -> usize {
        self.ones
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn push(&mut self, v: bool) {
        if self.len.is_multiple_of(8) {
            self.bytes.push(0);
        }
        self.len += 1;
        if v {
            self.set(self.len - 1);
        }
    }
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        i < self.len && (self.bytes[i >> 3] >> (i & 7)) & 1 == 1
    }
    /// Set bit `i`; returns true if it was clear.
    pub fn set(&mut self, i: usize) -> bool {
        assert!(i < self.len, "bit {i} out of range {}", self.len);
        let was = self.get(i);
        if !was {
            self.bytes[i >> 3] |= 1 << (i & 7);
            self.ones += 1;
        }
        !was
    }
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(move |&i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bits() {
        let mut b = Bitmap::new(10);
        assert!(b.set(3));
        assert!(!b.set(3));
        b.push(true);
        assert_eq!(b.len(), 11);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![3, 10]);
        let c = Bitmap::from_bytes(b.bytes().to_vec(), 11).unwrap();
        assert_eq!(c, b);
        assert_eq!(Bitmap::full(9).count_ones(), 9);
        assert!(Bitmap::from_bytes(vec![0xff], 3).unwrap().count_ones() == 3);
    }
}
