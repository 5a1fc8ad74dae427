"""One module per Configuration Service Provider winmdm drives (design.md §3): the LocURIs, the
payloads, and how to read what the device reports. Pure, like the rest of `protocol/`."""
