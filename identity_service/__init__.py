"""Identity federation: VNeID and agency providers, platform tokens, machine clients."""
