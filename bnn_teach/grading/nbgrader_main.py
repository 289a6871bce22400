"""``nbgrader`` as the course's grading commands run it: ``python -m bnn_teach.grading.nbgrader_main ARGS`` is
``nbgrader ARGS`` with two start-up costs removed and the same results.

* jsonschema's IRI format checker is not loaded: importing ``rfc3987_syntax`` compiles a grammar (0.7 s on an
  idle core, 2 s on a busy one, in every nbgrader process); nbgrader validates no IRI.
* A new gradebook records the version of nbgrader's database schema, which nbgrader asks of a second process
  (``alembic heads``, about 2 s); :func:`schema_head` reads the same version from nbgrader's migration scripts
  in this process (0.06 s).
"""
import sys


def schema_head() -> str:
    """The head revision of nbgrader's gradebook migrations (what ``alembic heads`` prints)."""
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    return ScriptDirectory(ALEMBIC_DIR).get_current_head()


def main() -> None:
    sys.modules.setdefault("rfc3987_syntax", None)  # jsonschema then leaves out the IRI checker
    import nbgrader.api
    from nbgrader.apps.nbgraderapp import main as nbgrader_main

    nbgrader.api.get_alembic_version = schema_head
    sys.argv[0] = "nbgrader"
    nbgrader_main()


if __name__ == "__main__":
    main()
