# tests/guestsim
