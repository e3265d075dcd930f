# Create chat session
session_response = requests.post('/chat/create', json={
    "model": "gemini-2.5-flash-image-preview",
    "system_prompt": "You are a professional photographer helping to refine and improve images."
})
session_id = session_response.json()['session_id']

# Initial generation
first_message = {
    "message": "Create a professional headshot of a business executive"
}
response1 = requests.post(f'/chat/{session_id}/message', json=first_message)

# Refinement
second_message = {
    "message": "Make the lighting softer and add more warmth to create a more approachable feeling"
}
response2 = requests.post(f'/chat/{session_id}/message', json=second_message)

# Further refinement
third_message = {
    "message": "Change the background to a modern office setting with blurred city views"
}
response3 = requests.post(f'/chat/{session_id}/message', json=third_message)
# --- end of the guide's sample; checks follow ---
for r in (response1, response2, response3):
    assert r.status_code == 200, r.text
    assert r.json()['images'], r.text
assert len(requests.get(f'/chat/{session_id}').json()['turns']) == 6
