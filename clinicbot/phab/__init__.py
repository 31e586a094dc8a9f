"""Everything that speaks Conduit: the client (the only module that knows HTTP), boards, history, wiki reads, snapshot building."""
