"""The hub-to-hub exchange (跨省通办): signed, store-and-forward messages between two hubs run by
two authorities. `envelope` is the wire format and its signature; `log` the message log and its
offline check; `payloads` what each kind of message carries, built from our database; `receive`
takes a partner's message (verify, dedupe, act, answer signed); `apply` brings a partner's news
about the parts it decides into our applications' event chains; `send` drains the outbox of
messages owed to partners (`hub run exchange`); `client` is the HTTP side with its limits and
TLS trust; `catalogue` exchanges the cross-region item lists. docs/cross-region.md describes it."""
