//! Shared by the integration tests: a child process that is killed when
//! dropped, so a failing test never leaves a server running.

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// A child process killed (and reaped) on drop, unless taken back with
/// `Child::from` to wait for it.
pub struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }
}

impl From<KillOnDrop> for Child {
    fn from(mut k: KillOnDrop) -> Child {
        k.0.take().expect("the child is present until dropped")
    }
}

impl Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("the child is present until dropped")
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child is present until dropped")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
