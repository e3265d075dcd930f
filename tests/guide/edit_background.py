# Background replacement
files = {'image': open('portrait.jpg', 'rb')}
data = {
    'prompt': '''Replace the current background with a cozy bookshop interior. 
    Show tall wooden bookshelves filled with books, warm golden lighting from 
    vintage pendant lights, a few leather armchairs, and large windows with 
    soft natural light. Keep the person exactly as they are, maintaining the 
    same lighting on their face and clothing.''',
    'preserve_subject': True,
    'edit_strength': 0.8
}

response = requests.post('/edit-image', files=files, data=data)
# --- end of the guide's sample; checks follow ---
assert response.status_code == 200, response.text
assert response.json()['images']
