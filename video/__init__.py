"""Remote face-to-face signing (远程面签) with aiortc: signaling, relay, recording, sealed
evidence. Arrives with issue [5/6]; the core never imports it."""
