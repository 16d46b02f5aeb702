"""Where the check service keeps its state: the replay memory and the pending evaluations.

One interface (:mod:`.interface`), two back-ends chosen by the ``state`` setting:
``in-process`` (:mod:`.in_process`, the embedded default: one process, memory only) and
``azure-storage`` (:mod:`.azure_storage`: an Azure Storage queue of pending evaluations and a
table of delivery ids and job states, shared by every replica and surviving restarts).
"""
