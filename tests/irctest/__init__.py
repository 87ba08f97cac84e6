"""The irctest conformance suite's controller for triochat (run by ``nox -s irctest``)."""
