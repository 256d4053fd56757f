//! The Tencent Cloud API 3.0 door to Kiln (BatchCompute, API version 2017-03-12): request
//! signatures (`sign`). The actions call the same operations as the REST API.

pub mod sign;
