"""clinicbot: clinic duty for Phabricator/Phorge workboards."""

__version__ = "0.1.0"
