//! Media: RTP/RTCP sessions, G.711 and Opus, SDP offer/answer, DTMF, prompt player.
