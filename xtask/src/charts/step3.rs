//! Step 3's picture, drawn from its data (`lab_analysis::step3::picture`): each naive writer's file and mapping, and where
//! its store faulted (drawn by step 2's [`layout`](super::step2::layout)), plus the file after
//! `disktable append` grew it.

use super::step2::layout;
use super::Picture;
use lab_analysis::disktable::picture::LayoutPicture;

/// The pictures of step 3, drawn from their data.
pub fn pictures(p: &Option<LayoutPicture>) -> Vec<Picture> {
    match p {
        Some(p) => vec![layout(p)],
        None => Vec::new(),
    }
}
