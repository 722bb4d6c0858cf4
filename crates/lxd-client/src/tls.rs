//! HTTPS transport: rustls with the `ring` provider, client certificate, and the
//! server authenticated by a pinned SHA-256 certificate fingerprint.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::Error;

/// Installs rustls's `ring` provider as the process-wide default, if none is
/// installed yet.
///
/// Only needed when the `https` feature is on **and** the program builds other
/// `reqwest::Client`s without a preconfigured TLS config: the feature turns on
/// reqwest's `rustls-no-provider` for the whole build, and reqwest then panics
/// when it finds no default provider. `lxd-client`'s own clients never need it.
pub fn install_default_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A TLS config for the unix-socket client, which never speaks TLS: it only keeps
/// reqwest from looking for a process-wide provider (and panicking) at build time.
pub(crate) fn inert_config() -> Result<ClientConfig, Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS versions: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// Parses a hex SHA-256 fingerprint; colons, spaces and case are ignored.
pub(crate) fn parse_fingerprint(s: &str) -> Result<[u8; 32], Error> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    let bad = || {
        Error::InvalidArgument(format!(
            "server fingerprint {s:?} must be 64 hex digits (SHA-256 of the certificate)"
        ))
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Client config: present `identity_pem` (certificate chain + private key), accept
/// exactly the server certificate whose SHA-256 is `fingerprint`.
pub(crate) fn pinned_config(identity_pem: &[u8], fingerprint: &str) -> Result<ClientConfig, Error> {
    let pin = parse_fingerprint(fingerprint)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(identity_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Config(format!("client certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(
            "client identity PEM holds no CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(identity_pem)
        .map_err(|e| Error::Config(format!("client private key PEM: {e}")))?;
    let provider = provider();
    let verifier = Arc::new(PinnedServer {
        pin,
        provider: provider.clone(),
    });
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(certs, key)
        .map_err(|e| Error::Config(format!("client certificate/key: {e}")))
}

/// Opens a TLS connection for the events websocket.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    // The name is not checked (the pin is); it only goes into SNI.
    let name =
        ServerName::try_from(host.to_owned()).map_err(|e| format!("server name {host:?}: {e}"))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))
}

/// Accepts the one server certificate whose SHA-256 matches the pin; checks the
/// handshake signatures with it as usual. Names and CAs are deliberately not
/// checked: LXD certificates are self-signed and name the host, not the address.
#[derive(Debug)]
struct PinnedServer {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate fingerprint {} does not match the pinned one",
                got.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_accept_colons_and_case() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&plain).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn identity_without_certificate_is_a_config_error() {
        let e = pinned_config(b"not pem", &"00".repeat(32)).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
    }

    #[test]
    fn inert_config_builds_without_a_default_provider() {
        inert_config().unwrap();
    }
}
