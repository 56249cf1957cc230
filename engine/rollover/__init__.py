"""A trustpoint's CA rollover on the engine clock (issue 17): the CA's next certificate held
as the shadow CA, a shadow router certificate under it, and both made current when the old CA
certificate expires, with no operator action.

Theory of operation (one job, `shadow <trustpoint>`, whose step follows from the status):

1. fetch, at 90% of the CA certificate's lifetime: GetCACaps, and if the CA advertises
   GetNextCACert (RFC 8894 §3.5.2), GetNextCACert. The answer's SignedData must verify with
   the trustpoint's CA certificate (§4.7.1: it is "signed by the current CA (or RA)
   signing key"; we take the CA's only); anything else is a `%` error recorded as a
   failed attempt (`ShadowCAFetchFailed`, retried a day later), never held. A verified one is
   held as the shadow CA certificate (`ShadowCAAccepted`), and the same job goes on to step 2.
   A CA that does not advertise GetNextCACert is logged once (`ShadowCANotOffered`,
   `%PKI-4-CA_ROLLOVER_UNSUPPORTED`): the operator must re-authenticate before the expiry.
   GetCACaps is then re-checked daily, silently (`ShadowCARechecked`), while the CA
   certificate lasts: a CA that starts offering GetNextCACert is fetched from as above. In
   the CA certificate's last week, a CA still offering none is said once more
   (`ShadowCANotOffered` again, `%PKI-2-CA_ROLLOVER_NONE`).
2. shadow enrollment, once the shadow CA is held and no renewal is in flight: the renewal
   exchange (engine/renewal `renewal_exchange`, purpose "shadow") enrolls with the current key
   pairs, signed by the current router certificates, enveloped to the shadow CA certificate;
   its answers (events/renewal.py) fold into the shadow router certificates, its PENDING polls
   and its retries run as any renewal's (`poll <trustpoint>`, and this job for a retry).
3. activation, at the old CA certificate's expiry: the shadow CA becomes the CA certificate
   (`ShadowCAActivated`) and each shadow router certificate the current one of its usage
   (`ShadowCertificateActivated`), in one batch.

Modules: `schedule.py` (when, pure), `fetch.py` (the GetNextCACert effect and its performer),
`jobs.py` (the due function and the steps), `folds.py`, `messages.py`.
"""
