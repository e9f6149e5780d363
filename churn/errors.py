"""The error every package raises for a mistake the user can fix."""


class UserFacingError(ValueError):
    """Bad input or a request the data cannot answer; the message names what is wrong and where.

    The CLI prints it as one line with exit code 2, the API as a 4xx with a JSON body.
    """
