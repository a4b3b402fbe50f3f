"""帮代办: the agent roster, agency tasks (抢单 or assigned), visits, 委托书, the project ledger."""
