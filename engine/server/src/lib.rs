pub mod datadir;
pub mod feed;
pub mod http;
pub mod organisation;
pub mod webhooks;
