"""Pure, synchronous processing stages over msgspec Structs: no network, no files, no loop."""
