//! Kept media of sharded collections: the original bytes of each ingested file, stored
//! once in the JetStream object store `agentdb-media` as `COLLECTION/SHA256`, so the node
//! that ingested a file and any other node can serve it. (The bytes sit on the NATS
//! servers' disks: encrypt them there with JetStream's own encryption at rest.)

use super::*;

fn media_object(collection: &str, sha: &str) -> String {
    format!("{collection}/{sha}")
}

impl Cluster {
    /// Keep `bytes` (content-addressed by `sha`) for collection `name`; a file kept
    /// already is not stored again.
    pub async fn put_media(&self, name: &str, sha: &str, bytes: &[u8]) -> Result<()> {
        let object = media_object(name, sha);
        if let Ok(info) = self.media.info(&object).await {
            if !info.deleted && info.size == bytes.len() {
                return Ok(());
            }
        }
        let mut reader = bytes;
        self.media
            .put(object.as_str(), &mut reader)
            .await
            .map_err(|e| Error::Unavailable(format!("keeping {object}: {e}")))?;
        Ok(())
    }

    /// The kept bytes of `sha` in collection `name`, if any.
    pub async fn media(&self, name: &str, sha: &str) -> Result<Option<Vec<u8>>> {
        let object = media_object(name, sha);
        match self.media.get(&object).await {
            Ok(mut obj) => {
                let mut out = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut obj, &mut out)
                    .await
                    .map_err(|e| Error::Unavailable(format!("reading {object}: {e}")))?;
                Ok(Some(out))
            }
            Err(e) if matches!(e.kind(), jetstream::object_store::GetErrorKind::NotFound) => Ok(None),
            Err(e) => Err(Error::Unavailable(format!("reading {object}: {e}"))),
        }
    }

    /// Remove every kept file of collection `name` (it was dropped).
    pub(crate) async fn drop_media(&self, name: &str) {
        let prefix = format!("{name}/");
        let mut gone = Vec::new();
        if let Ok(mut list) = self.media.list().await {
            while let Some(Ok(info)) = list.next().await {
                if info.name.starts_with(&prefix) && !info.deleted {
                    gone.push(info.name);
                }
            }
        }
        for o in gone {
            if let Err(e) = self.media.delete(&o).await {
                tracing::warn!(object = %o, error = %e, "cluster: cannot delete a dropped collection's kept file");
            }
        }
    }
}
