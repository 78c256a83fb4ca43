//! One Qdrant node: a gRPC channel ragd builds itself and the calls ragd makes on it.
//!
//! The official client (`qdrant_client::Qdrant`) builds its own channels and trusts only the
//! platform's root certificates, so a cluster behind a private certificate authority could be
//! reached only by replacing those roots process-wide (`SSL_CERT_FILE`). ragd therefore builds
//! the channel itself (the platform roots plus `qdrant.tls_ca`, the API key on every call) and
//! drives the client's generated gRPC services on it, with the client's request builders and
//! types unchanged.

use std::time::Duration;

use qdrant_client::qdrant::collections_client::CollectionsClient;
use qdrant_client::qdrant::points_client::PointsClient;
use qdrant_client::qdrant::qdrant_client::QdrantClient;
use qdrant_client::qdrant::{
    CollectionOperationResponse, CountPoints, CountResponse, CreateCollection,
    CreateFieldIndexCollection, DeleteCollection, DeletePoints, GetCollectionInfoRequest,
    GetCollectionInfoResponse, GetPoints, GetResponse, HealthCheckReply, HealthCheckRequest,
    ListCollectionsRequest, ListCollectionsResponse, PointsOperationResponse, QueryBatchPoints,
    QueryBatchResponse, ScrollPoints, ScrollResponse, UpdateCollection, UpsertPoints,
};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

/// The largest answer ragd accepts from a node (a page of chunks with their text).
const MAX_ANSWER: usize = 256 * 1024 * 1024;

/// How a node is reached: everything but its URL.
#[derive(Clone)]
pub struct Reach {
    /// Sent as `api-key` with every call.
    pub api_key: Option<AsciiMetadataValue>,
    /// Trusted beside the platform's roots for `https://` nodes.
    pub ca: Option<Certificate>,
    /// Longest a call may take.
    pub timeout: Duration,
    /// Longest a connection may take to open.
    pub connect_timeout: Duration,
}

/// Adds the API key to each call.
#[derive(Clone)]
pub struct ApiKey(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for ApiKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("api-key", key.clone());
        }
        Ok(request)
    }
}

type Service = InterceptedService<Channel, ApiKey>;

/// One node of the cluster. Its channel connects on first use and reconnects by itself after a
/// failure, so a node that comes back is used again without ragd rebuilding anything.
pub struct Node {
    channel: Channel,
    api_key: ApiKey,
}

impl Node {
    /// The node at `url`; no connection is made yet. Errors name what is wrong with the URL or
    /// the TLS settings.
    pub fn new(url: &str, reach: &Reach) -> Result<Self, String> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("not a URL: {e}"))?
            .timeout(reach.timeout)
            .connect_timeout(reach.connect_timeout)
            .keep_alive_while_idle(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = &reach.ca {
                tls = tls.ca_certificate(ca.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
        }
        Ok(Self {
            channel: endpoint.connect_lazy(),
            api_key: ApiKey(reach.api_key.clone()),
        })
    }

    fn service(&self) -> Service {
        InterceptedService::new(self.channel.clone(), self.api_key.clone())
    }

    fn points(&self) -> PointsClient<Service> {
        PointsClient::new(self.service()).max_decoding_message_size(MAX_ANSWER)
    }

    fn collections(&self) -> CollectionsClient<Service> {
        CollectionsClient::new(self.service()).max_decoding_message_size(MAX_ANSWER)
    }

    pub async fn health_check(&self) -> Result<HealthCheckReply, Status> {
        let mut client = QdrantClient::new(self.service());
        Ok(client
            .health_check(HealthCheckRequest {})
            .await?
            .into_inner())
    }

    pub async fn upsert_points(
        &self,
        request: impl Into<UpsertPoints>,
    ) -> Result<PointsOperationResponse, Status> {
        Ok(self.points().upsert(request.into()).await?.into_inner())
    }

    pub async fn delete_points(
        &self,
        request: impl Into<DeletePoints>,
    ) -> Result<PointsOperationResponse, Status> {
        Ok(self.points().delete(request.into()).await?.into_inner())
    }

    pub async fn get_points(&self, request: impl Into<GetPoints>) -> Result<GetResponse, Status> {
        Ok(self.points().get(request.into()).await?.into_inner())
    }

    pub async fn query_batch(
        &self,
        request: impl Into<QueryBatchPoints>,
    ) -> Result<QueryBatchResponse, Status> {
        Ok(self
            .points()
            .query_batch(request.into())
            .await?
            .into_inner())
    }

    pub async fn scroll(&self, request: impl Into<ScrollPoints>) -> Result<ScrollResponse, Status> {
        Ok(self.points().scroll(request.into()).await?.into_inner())
    }

    pub async fn count(&self, request: impl Into<CountPoints>) -> Result<CountResponse, Status> {
        Ok(self.points().count(request.into()).await?.into_inner())
    }

    pub async fn create_field_index(
        &self,
        request: impl Into<CreateFieldIndexCollection>,
    ) -> Result<PointsOperationResponse, Status> {
        Ok(self
            .points()
            .create_field_index(request.into())
            .await?
            .into_inner())
    }

    pub async fn create_collection(
        &self,
        request: impl Into<CreateCollection>,
    ) -> Result<CollectionOperationResponse, Status> {
        Ok(self
            .collections()
            .create(request.into())
            .await?
            .into_inner())
    }

    pub async fn update_collection(
        &self,
        request: impl Into<UpdateCollection>,
    ) -> Result<CollectionOperationResponse, Status> {
        Ok(self
            .collections()
            .update(request.into())
            .await?
            .into_inner())
    }

    pub async fn delete_collection(
        &self,
        request: impl Into<DeleteCollection>,
    ) -> Result<CollectionOperationResponse, Status> {
        Ok(self
            .collections()
            .delete(request.into())
            .await?
            .into_inner())
    }

    pub async fn collection_info(&self, name: &str) -> Result<GetCollectionInfoResponse, Status> {
        let request = GetCollectionInfoRequest {
            collection_name: name.to_string(),
        };
        Ok(self.collections().get(request).await?.into_inner())
    }

    pub async fn list_collections(&self) -> Result<ListCollectionsResponse, Status> {
        Ok(self
            .collections()
            .list(ListCollectionsRequest {})
            .await?
            .into_inner())
    }
}
