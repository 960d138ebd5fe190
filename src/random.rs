//! The randomness seam for values sealwright generates for users (passwords, tokens, keys,
//! certificates): the OS CSPRNG in every running server, a seeded stream in tests so a test can
//! say exactly what a rule makes. Keys of sealwright's own (age, SSH, signing keys) come from
//! the OS directly: no test needs them predictable.

use std::sync::{Arc, Mutex};

use rand::rngs::{OsRng, StdRng};
use rand::{CryptoRng, RngCore, SeedableRng};

/// Where generated values come from. Cheap to clone; clones share one seeded stream.
#[derive(Clone, Default)]
pub struct Entropy(Option<Arc<Mutex<StdRng>>>);

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Entropy(seeded)"
        } else {
            "Entropy(os)"
        })
    }
}

impl Entropy {
    /// The operating system's CSPRNG.
    pub fn os() -> Entropy {
        Entropy(None)
    }

    /// A deterministic stream (tests only: the same seed and calls give the same values).
    pub fn seeded(seed: u64) -> Entropy {
        Entropy(Some(Arc::new(Mutex::new(StdRng::seed_from_u64(seed)))))
    }

    /// A generator for one value. A seeded source hands out a child stream seeded from its
    /// own, so the values depend only on the seed and the order of the calls.
    pub fn rng(&self) -> EntropyRng {
        match &self.0 {
            None => EntropyRng::Os(OsRng),
            Some(shared) => {
                let mut parent = shared.lock().unwrap_or_else(|p| p.into_inner());
                let mut seed = [0u8; 32];
                parent.fill_bytes(&mut seed);
                EntropyRng::Seeded(Box::new(StdRng::from_seed(seed)))
            }
        }
    }
}

/// A cryptographic random number generator from an [`Entropy`].
pub enum EntropyRng {
    Os(OsRng),
    Seeded(Box<StdRng>),
}

impl RngCore for EntropyRng {
    fn next_u32(&mut self) -> u32 {
        match self {
            EntropyRng::Os(r) => r.next_u32(),
            EntropyRng::Seeded(r) => r.next_u32(),
        }
    }
    fn next_u64(&mut self) -> u64 {
        match self {
            EntropyRng::Os(r) => r.next_u64(),
            EntropyRng::Seeded(r) => r.next_u64(),
        }
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        match self {
            EntropyRng::Os(r) => r.fill_bytes(dest),
            EntropyRng::Seeded(r) => r.fill_bytes(dest),
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        match self {
            EntropyRng::Os(r) => r.try_fill_bytes(dest),
            EntropyRng::Seeded(r) => r.try_fill_bytes(dest),
        }
    }
}

// Both arms are cryptographically secure generators (StdRng is ChaCha12).
impl CryptoRng for EntropyRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_stream_and_the_os_does_not() {
        let draw = |e: &Entropy| {
            let mut b = [0u8; 16];
            e.rng().fill_bytes(&mut b);
            b
        };
        let (a, b) = (Entropy::seeded(7), Entropy::seeded(7));
        assert_eq!([draw(&a), draw(&a)], [draw(&b), draw(&b)]);
        assert_ne!(draw(&a), draw(&a), "each call gets a stream of its own");
        assert_ne!(draw(&Entropy::seeded(8)), draw(&Entropy::seeded(7)));
        let os = Entropy::os();
        assert_ne!(draw(&os), draw(&os));
    }
}
