"""The pure core shared by every function: validation, SQL, the queue interface, the warehouse
destinations, the ops contract, the defaults.

Imports: nothing of the project outside `lambdas.core` (it ships in the Lambda package alone).
Imported by the handlers (`lambdas`), and by the CLI (`txpipe_cli`) for the facts they share: the ops
contract (contract.py), the defaults (defaults.py), the order rules (orders.py), one_line (reasons.py).
"""
