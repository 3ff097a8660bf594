//! The set of import profiles a process knows: `people`, built in, and one per `*.toml` file in
//! the directory named by `IMPORT_PROFILES_DIR`. The api and the workers load the same
//! directory, so an upload can only name a profile its worker can run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::profile::{Profile, ProfileError, PEOPLE};

/// Profiles by name.
#[derive(Debug, Clone)]
pub struct Profiles {
    by_name: Arc<BTreeMap<String, Profile>>,
}

impl Default for Profiles {
    /// Only the built-in `people`.
    fn default() -> Profiles {
        Profiles::from_profiles(Vec::new()).expect("people alone cannot clash")
    }
}

impl Profiles {
    /// `people` plus `profiles`.
    ///
    /// # Errors
    /// [`ProfileError`] when two profiles share a name (or one is called `people`).
    pub fn from_profiles(profiles: Vec<Profile>) -> Result<Profiles, ProfileError> {
        let mut by_name = BTreeMap::new();
        by_name.insert(PEOPLE.to_owned(), Profile::people());
        for profile in profiles {
            if by_name.contains_key(&profile.name) {
                return Err(ProfileError {
                    source_name: profile.name.clone(),
                    reason: format!("a profile named {:?} exists already", profile.name),
                });
            }
            by_name.insert(profile.name.clone(), profile);
        }
        Ok(Profiles {
            by_name: Arc::new(by_name),
        })
    }

    /// `people` plus every `*.toml` file of `dir` (other files are ignored).
    ///
    /// # Errors
    /// [`ProfileError`] naming the file: unreadable directory or file, or a profile refused by
    /// [`Profile::from_toml`]. A process refuses to start on a bad profile rather than run
    /// without it.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ProfileError> {
        let refuse = |what: &Path, reason: String| ProfileError {
            source_name: what.display().to_string(),
            reason,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| refuse(dir, e.to_string()))?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| refuse(dir, e.to_string()))?.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut profiles = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| refuse(&path, e.to_string()))?;
            profiles.push(Profile::from_toml(&path.display().to_string(), &text)?);
        }
        Profiles::from_profiles(profiles)
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.by_name.get(name)
    }

    /// Every profile, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_name.values()
    }

    /// The names, comma-separated (for "unknown profile" errors).
    pub fn names(&self) -> String {
        self.by_name.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}
