//! The crate's error type: one variant per module's error enum.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sops(#[from] sops::SopsError),
}
