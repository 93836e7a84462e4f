"""Every fixed line a caller hears from telephony, in every voice mode: gather renders them
in <Say>, relay sends them as text tokens. What the model says is not here."""

from __future__ import annotations

NO_INPUT_GOODBYE = "I didn't hear anything, so I'll hang up now. Goodbye!"
FAREWELL = "Thank you for calling. Have a great day. Goodbye!"
APOLOGY = "Sorry, I'm having trouble answering right now. Could you say that again?"
HOLDING = "Sorry, that took too long. Could you say that again?"
DIDNT_CATCH = "Sorry, I didn't catch that. Could you say it again?"
NOT_SURE = "Sorry, I'm not sure I understood. Could you say that again?"
KEYPAD_HELP = "Press 0 to talk to a person, or just tell me what you need."
FILLER = "One moment."
RELAY_FAILED = "Sorry, we had a problem on the line. How can I help you?"
STILL_THERE = "Are you still there? How can I help?"
TRANSFERRING = "Connecting you to a member of our team. Please hold."
TRANSFER_FAILED = "Sorry, the transfer didn't go through. Please call again later. Goodbye!"
NOBODY_AVAILABLE = "Sorry, no one is available to take your call right now. I can still help you."
MESSAGE_TAKEN = "Thank you, I've taken your message. Is there anything else I can help with?"
MESSAGE_NOT_SAVED = (
    "Sorry, I couldn't save your message just now. Please call again a little later."
)
TOO_MANY_CALLS = "Sorry, this number has called too many times. Please try again later. Goodbye!"
