//! A session whose queries run on a Ballista cluster.

use std::sync::Arc;

use ballista::extension::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use tracelake_query::SessionBuilder;
use tracelake_store::DataLocation;

use crate::codec::TracelakeLogicalCodec;

/// A session on `location` (which the scheduler and executors must reach under the same name)
/// whose queries run on the scheduler at `url` (`df://host:port`).
pub async fn remote_session(url: &str, location: DataLocation) -> datafusion::common::Result<SessionContext> {
    let external = |e: tracelake_query::Error| datafusion::common::DataFusionError::External(Box::new(e));
    let builder = SessionBuilder::new(location);
    let mut base =
        SessionConfig::new_with_ballista().with_ballista_logical_extension_codec(Arc::new(TracelakeLogicalCodec::default()));
    // The plan goes to the scheduler as protobuf; the `__datafusion_extracted_*` columns this
    // rule introduces (for struct fields such as critical_path_agg's) do not survive the round
    // trip in DataFusion 55 ("No field named sum(__datafusion_extracted_4)").
    base.options_mut().optimizer.enable_leaf_expression_pushdown = false;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(builder.session_config_on(base))
        .with_runtime_env(builder.runtime_env().map_err(external)?)
        .build();
    let mut ctx = SessionContext::remote_with_state(url, state).await?;
    // After the state became a Ballista one (which replaces its function lists): tables,
    // functions, views.
    builder.register_into(&mut ctx).await.map_err(external)?;
    Ok(ctx)
}
