//! Maps a [`ProviderKind`] to its adapter.

use super::{ProviderAdapter, ProviderKind};

pub fn adapter(kind: ProviderKind) -> &'static dyn ProviderAdapter {
    match kind {
        ProviderKind::Sandbox => &super::sandbox::SandboxAdapter,
        ProviderKind::Twilio => &super::twilio::TwilioAdapter,
        ProviderKind::VonageSms => &super::vonage::VonageSmsAdapter,
        ProviderKind::VonageMessages => &super::vonage::VonageMessagesAdapter,
        ProviderKind::Telnyx => &super::telnyx::TelnyxAdapter,
        ProviderKind::Bandwidth => &super::bandwidth::BandwidthAdapter,
        ProviderKind::Plivo => &super::plivo::PlivoAdapter,
        ProviderKind::Sinch => &super::sinch::SinchAdapter,
    }
}
