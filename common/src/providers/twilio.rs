//! Twilio adapter (being written).

use super::*;

pub struct TwilioAdapter;

impl ProviderAdapter for TwilioAdapter {
    fn kind(&self) -> ProviderKind {
        todo!()
    }
    fn capabilities(&self) -> Capabilities {
        todo!()
    }
    fn build_send(&self, _creds: &Credentials, _msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        todo!()
    }
    fn parse_send_response(&self, _resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        todo!()
    }
    fn verify_callback(&self, _creds: &Credentials, _req: &WebhookRequest, _now_unix: i64) -> Result<(), VerifyError> {
        todo!()
    }
    fn parse_callback(&self, _req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        todo!()
    }
}
